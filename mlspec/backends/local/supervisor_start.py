"""How the engine starts and finds a workspace's supervisor: `ensure_running`, `running`, and `python_command`."""

from __future__ import annotations

import fcntl
import subprocess
import sys
import time
from pathlib import Path

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.state import StateError
from mlspec.backends.local.wakeup import wake

START_TIMEOUT = 30.0  # generous: a loaded machine may take long to import; a crash is seen at once


class SupervisorFailed(StateError):
    """The workspace supervisor could not be started; the message holds its own last lines."""


def running(paths: WorkspacePaths) -> bool:
    """Whether a supervisor holds this workspace's supervisor lock."""
    paths.supervisor_lock.parent.mkdir(parents=True, exist_ok=True)
    with open(paths.supervisor_lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def python_command(module: str, *args: str, python: str | None = None) -> list[str]:
    """How mlspec starts one of its own modules: -P, so that no file in the working directory (a user's
    `mlspec.py`, say) can stand in for a module of mlspec or its dependencies."""
    return [python or sys.executable, "-P", "-m", module, *args]


def ensure_running(paths: WorkspacePaths) -> None:
    """Start the supervisor in its own session unless one is already running; SupervisorFailed, with its own
    fresh log lines, when it does not come up."""
    if running(paths):
        wake(paths)  # what the caller has just declared starts now, not at the next tick
        return
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.proc.mkdir(parents=True, exist_ok=True)
    try:
        offset = paths.supervisor_log.stat().st_size
    except OSError:
        offset = 0
    with open(paths.supervisor_log, "ab") as log:
        proc = subprocess.Popen(python_command("mlspec.backends.local.supervisor", str(paths.root.resolve())),
                                cwd=paths.proc, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while not running(paths):
        code = proc.poll()
        if code is not None and not running(paths):
            if code == 0:
                return  # it found nothing to do, or another supervisor took over
            raise SupervisorFailed(f"the workspace supervisor exited with code {code} as it started; its log:\n"
                                   f"{_lines_after(paths.supervisor_log, offset)}\n  full log: {paths.supervisor_log}")
        if time.monotonic() > deadline:
            raise SupervisorFailed(f"the workspace supervisor did not start within {START_TIMEOUT:.0f}s; its log:\n"
                                   f"{_lines_after(paths.supervisor_log, offset)}")
        time.sleep(0.05)


def _lines_after(path: Path, offset: int, lines: int = 12) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace").splitlines()
    except OSError:
        text = []
    return "\n".join(f"    {line}" for line in text[-lines:]) or "    (it wrote nothing)"

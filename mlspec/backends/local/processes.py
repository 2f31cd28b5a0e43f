"""Process helpers for the local engine: identity and ownership of processes, group kills, free ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

ID_VAR = "MLSPEC_PROCESS_ID"  # set in every process mlspec starts: proves a pid is still the one we started
WORKSPACE_VAR = "MLSPEC_WORKSPACE"
# Who started a process, and so who may decide it is an orphan: SUPERVISOR for the supervisor's processes, or
# `up PID START_TICKS` for the jobs and batch runs of one `mlspec up` (the start time tells a reused pid apart).
STARTED_BY_VAR = "MLSPEC_STARTED_BY"
SUPERVISOR = "supervisor"


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def is_ours(pid: int | None, process_id: str) -> bool:
    """True when `pid` is alive and is the supervised process `process_id` (pids get reused)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    if _zombie(pid):
        return False
    return _environ(pid).get(ID_VAR) == process_id


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def workspace_processes(workspace: str, started_by: str | None = None) -> dict[int, str]:
    """Every live process started for a workspace (only those `started_by` that owner if given): pid -> its id."""
    return {pid: process_id for pid, (process_id, owner) in owned_processes(workspace).items()
            if started_by is None or owner == started_by}


def owned_processes(workspace: str) -> dict[int, tuple[str, str]]:
    """Every live process started for a workspace: pid -> (its id, who started it; "" when it does not say)."""
    found: dict[int, tuple[str, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        env = _environ(int(entry.name))
        if env.get(WORKSPACE_VAR) == workspace and ID_VAR in env and not _zombie(int(entry.name)):
            found[int(entry.name)] = (env[ID_VAR], env.get(STARTED_BY_VAR, ""))
    return found


def marked_processes(workspace: str, started_by: str) -> list[int]:
    """Live processes of a workspace that carry the owner mark `started_by`, whether or not they carry an id (the
    supervisor's zygotes carry none: no row declares them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            env = _environ(int(entry.name))
            if env.get(WORKSPACE_VAR) == workspace and env.get(STARTED_BY_VAR) == started_by \
                    and not _zombie(int(entry.name)):
                found.append(int(entry.name))
    return found


def _start_ticks(pid: int) -> str | None:
    """When the process started, in clock ticks since boot: with the pid, names one process for good."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def this_up() -> str:
    """The owner mark of the calling process, for the job and batch processes it starts."""
    return f"up {os.getpid()} {_start_ticks(os.getpid())}"


def owner_alive(started_by: str) -> bool:
    """Whether the `mlspec up` named by an owner mark still runs (the supervisor's processes: always)."""
    if started_by == SUPERVISOR:
        return True
    parts = started_by.split()
    if len(parts) != 3 or parts[0] != "up" or not parts[1].isdigit():
        return False
    return not _zombie(int(parts[1])) and _start_ticks(int(parts[1])) == parts[2]


def up_process_env(workspace: str, process_id: str) -> dict[str, str]:
    """The marks of a process the calling `mlspec up` starts and owns (a job, a batch run): its whole process
    tree inherits them, so a later `up` or `down` can tell whether its owner is gone."""
    return {WORKSPACE_VAR: workspace, ID_VAR: process_id, STARTED_BY_VAR: this_up()}


def abandoned_processes(workspace: str) -> dict[int, str]:
    """Processes of this workspace started by an `mlspec up` that is gone: pid -> their id."""
    return {pid: process_id for pid, (process_id, owner) in owned_processes(workspace).items()
            if owner.startswith("up ") and not owner_alive(owner)}


def stop_group(pid: int, grace: float = 5.0) -> None:
    """SIGTERM the process group (graceful drain), then SIGKILL whatever is left after `grace`."""
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        if _zombie(pid):
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            return
        time.sleep(0.05)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def interpreter_bin(folder: Path) -> str:
    """A folder to put first on a job's PATH so that its `python` is the interpreter mlspec runs with.

    A virtualenv's bin folder already is one (and activates the venv, as users expect); any other interpreter
    gets `python` and `python3` scripts that exec it, kept in `folder`, one per interpreter.
    """
    import hashlib
    import sys

    executable = Path(sys.executable)
    own = executable.parent / "python"
    if sys.prefix != sys.base_prefix and own.exists() and own.resolve() == executable.resolve():
        return str(executable.parent)
    shims = folder / hashlib.sha256(str(executable).encode()).hexdigest()[:12]
    script = f'#!/bin/sh\nexec "{executable}" "$@"\n'
    if not (shims / "python").exists() or (shims / "python").read_text() != script:
        shims.mkdir(parents=True, exist_ok=True)
        for name in ("python", "python3"):
            temporary = shims / f".{name}.{os.getpid()}"
            temporary.write_text(script)
            temporary.chmod(0o755)
            temporary.replace(shims / name)  # atomic: a job starting meanwhile never sees half a script
    return str(shims)

"""Process helpers for the local engine: liveness by identity (not just pid), group kills, free ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

ID_VAR = "MLSPEC_PROCESS_ID"  # set in every supervised process: proves a pid is still ours
WORKSPACE_VAR = "MLSPEC_WORKSPACE"


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


def workspace_processes(workspace: str) -> dict[int, str]:
    """Every live process started for a workspace: pid -> supervised process id."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        env = _environ(int(entry.name))
        if env.get(WORKSPACE_VAR) == workspace and ID_VAR in env and not _zombie(int(entry.name)):
            found[int(entry.name)] = env[ID_VAR]
    return found


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

"""The lock of a shared state location: a lock file created atomically, naming who holds it, where, since when and
for which command. Unlike the workspace's flock it outlives a killed holder (other machines cannot see processes),
so a stale one is broken by hand, with proof of death where the holder ran on this machine."""

from __future__ import annotations

import errno
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlspec.backends.local.processes import owner_alive, this_up
from mlspec.backends.local.whoami import host, machine_mark, user

POLL_S = 0.2
# File systems without hard links (some SMB mounts) answer these: the lock is then created with O_EXCL.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}


@dataclass(frozen=True)
class LockInfo:
    id: str
    command: str  # e.g. "mlspec up"
    user: str
    host: str
    since: str  # ISO 8601, UTC
    pid: int
    process: str  # the holder's owner mark (processes.this_up): with the pid, one process for good
    machine: str = ""  # whoami.machine_mark of the holder

    def describe(self) -> str:
        return f"`{self.command}` by {self.user} on {self.host} (pid {self.pid}) since {self.since}"

    def gone(self) -> bool:
        """Whether the holder has certainly ended: it ran where this process sees its pids, and it is not there."""
        return bool(self.machine) and self.machine == machine_mark() and not owner_alive(self.process)


class LockHeld(Exception):
    """The location is locked by another command; `holder` is None when its lock file cannot be read."""

    def __init__(self, holder: LockInfo | None):
        super().__init__(holder.describe() if holder else "a holder whose lock file cannot be read")
        self.holder = holder


def read_lock(path: Path) -> LockInfo | None:
    """The holder of the lock at `path`; None when it is free. Raises LockHeld(None) for an unreadable lock."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return LockInfo(**json.loads(text))
    except (ValueError, TypeError):
        raise LockHeld(None) from None


def acquire(path: Path, command: str, timeout: float = 0.0) -> LockInfo:
    """Take the lock, waiting up to `timeout` seconds for its holder to release it; LockHeld when it does not."""
    mine = LockInfo(uuid.uuid4().hex, command, user(), host(), datetime.now(UTC).isoformat(timespec="seconds"),
                    os.getpid(), this_up(), machine_mark())
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        if _create(path, json.dumps(asdict(mine)) + "\n"):
            return mine
        try:
            holder = read_lock(path)
        except LockHeld:
            holder = None
            if time.monotonic() >= deadline:
                raise
        else:
            if holder is None:
                continue  # released between our attempt and the read: try again at once
            if time.monotonic() >= deadline:
                raise LockHeld(holder)
        time.sleep(POLL_S)


def _create(path: Path, content: str) -> bool:
    """Create the lock file with its whole content in one step (a hard link of a complete file: atomic on local
    file systems and NFS alike); False when it exists."""
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(partial, path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
        return _create_exclusive(path, content)
    finally:
        partial.unlink(missing_ok=True)


def _create_exclusive(path: Path, content: str) -> bool:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(content)
    return True


def release(path: Path, mine: LockInfo) -> bool:
    """Drop the lock if it is still ours (it is not once someone broke it and another command took it)."""
    try:
        holder = read_lock(path)
    except LockHeld:
        return False
    if holder is None or holder.id != mine.id:
        return False
    path.unlink(missing_ok=True)
    return True


def break_lock(path: Path, force: bool) -> LockInfo | None:
    """Remove the lock: without `force` only when its holder has certainly ended. Returns the holder removed (None
    when the lock was free); LockHeld when it may still run."""
    try:
        holder = read_lock(path)
    except LockHeld:
        if not force:
            raise
        path.unlink(missing_ok=True)
        return None
    if holder is None:
        return None
    if not force and not holder.gone():
        raise LockHeld(holder)
    path.unlink(missing_ok=True)
    return holder

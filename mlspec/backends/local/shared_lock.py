"""The lock of a shared state location: an object (a file, an S3 object) created atomically, naming who holds it,
where, since when and for which command. Unlike the workspace's flock it outlives a killed holder (other machines
cannot see processes), so a stale one is broken by hand, with proof of death where the holder ran on this machine."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from mlspec.backends.local.processes import owner_alive, this_up
from mlspec.backends.local.shared_store import Store
from mlspec.backends.local.whoami import host, machine_mark, user

POLL_S = 0.2


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


def read_lock(store: Store, name: str) -> LockInfo | None:
    """The holder of the lock `name`; None when it is free. Raises LockHeld(None) for an unreadable lock."""
    found = _read(store, name)
    return found[0] if found else None


def _read(store: Store, name: str) -> tuple[LockInfo, str] | None:
    """The holder and the version of the lock object; None when it is free."""
    stored = store.read(name)
    if stored is None:
        return None
    try:
        return LockInfo(**json.loads(stored.data.decode("utf-8"))), stored.tag
    except (ValueError, TypeError):
        raise LockHeld(None) from None


def acquire(store: Store, name: str, command: str, timeout: float = 0.0) -> LockInfo:
    """Take the lock, waiting up to `timeout` seconds for its holder to release it; LockHeld when it does not."""
    mine = LockInfo(uuid.uuid4().hex, command, user(), host(), datetime.now(UTC).isoformat(timespec="seconds"),
                    os.getpid(), this_up(), machine_mark())
    content = (json.dumps(asdict(mine)) + "\n").encode("utf-8")
    deadline = time.monotonic() + timeout
    while True:
        if store.create(name, content):
            return mine
        try:
            holder = read_lock(store, name)
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


def release(store: Store, name: str, mine: LockInfo) -> bool:
    """Drop the lock if it is still ours (it is not once someone broke it and another command took it)."""
    try:
        found = _read(store, name)
    except LockHeld:
        return False
    if found is None or found[0].id != mine.id:
        return False
    return store.delete(name, found[1])


def break_lock(store: Store, name: str, force: bool) -> LockInfo | None:
    """Remove the lock: without `force` only when its holder has certainly ended. Returns the holder removed (None
    when the lock was free); LockHeld when it may still run."""
    try:
        found = _read(store, name)
    except LockHeld:
        if not force:
            raise
        unreadable = store.read(name)
        if unreadable is not None:
            store.delete(name, unreadable.tag)
        return None
    if found is None:
        return None
    holder, tag = found
    if not force and not holder.gone():
        raise LockHeld(holder)
    store.delete(name, tag)
    return holder

"""A shared state location of the local engine: a folder (a network share, a mounted volume) or an S3 bucket prefix
holding, per workspace, the snapshot its `up` and `down` publish and the lock they hold meanwhile. The workspace's
state.db stays the engine's working copy; the snapshot is what machines without it (CI) plan against."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from mlspec.backends.local.shared_lock import LockHeld, LockInfo, acquire, break_lock, read_lock
from mlspec.backends.local.shared_lock import release as release_lock
from mlspec.backends.local.shared_store import Store
from mlspec.backends.local.snapshot import Snapshot, new_snapshot, read_snapshot, write_snapshot
from mlspec.backends.local.state import StateStore


@dataclass(frozen=True)
class SharedState:
    store: Store
    workspace: str

    @property
    def where(self) -> str:
        return self.store.where

    @property
    def snapshot_name(self) -> str:
        return f"{self.workspace}.json"

    @property
    def lock_name(self) -> str:
        return f"{self.workspace}.lock"

    @property
    def snapshot_at(self) -> str:
        return self.store.at(self.snapshot_name)

    @property
    def lock_at(self) -> str:
        return self.store.at(self.lock_name)

    def read(self) -> Snapshot | None:
        """The published snapshot; None when nothing was published here (nothing is deployed)."""
        return read_snapshot(self.store, self.snapshot_name)

    def holder(self) -> LockInfo | None:
        """Who holds the lock now (None: free, or a lock that cannot be read)."""
        try:
            return read_lock(self.store, self.lock_name)
        except LockHeld:
            return None

    def locked_now(self) -> bool:
        return self.store.exists(self.lock_name)

    def lock(self, command: str, timeout: float) -> LockInfo:
        """Take the lock for `command`; LockHeld when another holds it beyond `timeout` seconds."""
        return acquire(self.store, self.lock_name, command, timeout)

    def release(self, mine: LockInfo) -> None:
        release_lock(self.store, self.lock_name, mine)

    def unlock(self, force: bool) -> LockInfo | None:
        return break_lock(self.store, self.lock_name, force)

    def adoption_problem(self, state_db: Path) -> str | None:
        """Why this workspace may not publish here: the snapshot records a deployment made from another workspace
        state (its lineage), which publishing this one's would silently replace."""
        published = self.read()
        if published is None or not published.records:
            return None
        if published.lineage and published.lineage == lineage_of(state_db):
            return None
        return (f"{self.snapshot_at} records {len(published.records)} resource(s) deployed from another workspace "
                f"(published at {published.published_at} by {published.by}), and this workspace "
                f"({state_db.parent}) is not that one: run up and down where it was deployed, or choose another "
                f"state location; remove {self.snapshot_name} there to publish this workspace's instead")

    def publish(self, state_db: Path) -> Snapshot:
        """Publish what the workspace state records now (what was applied is real, also after a failed step)."""
        store = StateStore(state_db)
        try:
            snapshot = new_snapshot(self.workspace, store.records(), store.meta("lineage"), store.serial)
        finally:
            store.close()
        write_snapshot(self.store, self.snapshot_name, snapshot)
        return snapshot


def lineage_of(state_db: Path) -> str | None:
    """The lineage of a workspace state, read without creating or changing anything; None when there is none."""
    if not state_db.exists():
        return None
    try:
        db = sqlite3.connect(f"{state_db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key='lineage'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None

"""The workspace state store: SQLite in WAL mode, with a serial, a lineage and an exclusive apply lock."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlspec.plan import Record

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resources (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, hash TEXT NOT NULL, spec TEXT NOT NULL, files TEXT NOT NULL,
    upstream TEXT NOT NULL, outputs TEXT NOT NULL, status TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS processes (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, argv TEXT NOT NULL, env TEXT NOT NULL, cwd TEXT NOT NULL,
    log TEXT NOT NULL, health TEXT, pid INTEGER, started REAL, restarts INTEGER NOT NULL DEFAULT 0,
    last_exit INTEGER, state TEXT NOT NULL DEFAULT 'pending', desired INTEGER NOT NULL DEFAULT 1, policy TEXT,
    streak INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events (ts REAL NOT NULL, resource TEXT NOT NULL, message TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS model_digests (
    name TEXT NOT NULL, version INTEGER NOT NULL, sha256 TEXT NOT NULL, run_id TEXT, source TEXT NOT NULL,
    recorded REAL NOT NULL, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS schedules (
    id TEXT PRIMARY KEY, schedule TEXT NOT NULL, launch TEXT NOT NULL, armed REAL NOT NULL, next_run REAL,
    runs INTEGER NOT NULL DEFAULT 0, last_run REAL, last_outcome TEXT, last_run_id TEXT, last_error TEXT,
    pid INTEGER, missed INTEGER NOT NULL DEFAULT 0);
"""


class StateError(Exception):
    """The state store cannot be used as it is; the message says what to do."""


@dataclass
class ProcessRow:
    id: str
    owner: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    log: str
    health: str | None
    pid: int | None = None
    started: float | None = None
    restarts: int = 0
    last_exit: int | None = None
    state: str = "pending"
    desired: bool = True
    # What the supervisor watches besides the exit: {"liveness": {"url", probe settings}} restarts a process that
    # fails its probe; {"idle": {"url", "seconds"}} stops (state 'stopped') a JupyterLab idle that long.
    policy: dict[str, Any] = field(default_factory=dict)
    # Exits in a row, each before the process had run RESET_AFTER_S: what the restart backoff grows with, and a
    # crash loop's measure. `restarts` counts every restart, for the record.
    streak: int = 0


class StateStore:
    def __init__(self, path: Path):
        self.path = path
        try:
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process kills
            self.db.executescript(_SCHEMA)
            self._add_columns()
            self._check_version()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise  # cannot open or write (permissions, a full disk, a lock): not a damaged file
            raise StateError(
                f"the state file {path} is not a readable mlspec state ({exc}). Nothing was changed. "
                f"Restore {path.name}.bak from the same folder if it exists, or move the file away to start over."
            ) from exc

    def _check_version(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            self.db.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", [
                ("schema", str(SCHEMA_VERSION)), ("lineage", uuid.uuid4().hex), ("serial", "0")])
        elif int(row[0]) > SCHEMA_VERSION:
            raise StateError(f"the state file {self.path} was written by a newer mlspec (state schema {row[0]}, "
                             f"this mlspec reads {SCHEMA_VERSION}). Upgrade mlspec; nothing was changed.")

    def _add_columns(self) -> None:
        """State written before processes had a policy (empty: watched for exits only) or a crash streak gains
        the columns."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(processes)")}
        for name, definition in (("policy", "TEXT"), ("streak", "INTEGER NOT NULL DEFAULT 0")):
            if name in columns:
                continue
            try:
                self.db.execute(f"ALTER TABLE processes ADD COLUMN {name} {definition}")
            except sqlite3.OperationalError as error:  # another process opening the store added it first
                if "duplicate column" not in str(error):
                    raise

    def close(self) -> None:
        self.db.close()

    # -- meta ------------------------------------------------------------------------------------
    def meta(self, key: str) -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else ""

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def serial(self) -> int:
        return int(self.meta("serial") or 0)

    def backup(self) -> None:
        """Copy the state aside before an apply changes it (sqlite's online backup: consistent under WAL)."""
        target = sqlite3.connect(self.path.with_name(self.path.name + ".bak"))
        with target:
            self.db.backup(target)
        target.close()

    # -- resources -------------------------------------------------------------------------------
    def records(self) -> dict[str, Record]:
        rows = self.db.execute("SELECT id, kind, hash, spec, files, upstream, outputs, status FROM resources")
        return {r[0]: Record(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), json.loads(r[5]),
                             json.loads(r[6]), r[7]) for r in rows}

    def put(self, record: Record) -> None:
        """Record one completed step; the serial moves on so readers can tell state changed."""
        with self._transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO resources VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.id, record.kind, record.hash, json.dumps(record.spec), json.dumps(record.files),
                 json.dumps(record.upstream), json.dumps(record.outputs, default=str), record.status, time.time()))
            self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='serial'")

    def remove(self, resource_id: str) -> None:
        with self._transaction():
            self.db.execute("DELETE FROM resources WHERE id=?", (resource_id,))
            self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='serial'")

    def event(self, resource_id: str, message: str) -> None:
        self.db.execute("INSERT INTO events VALUES (?, ?, ?)", (time.time(), resource_id, message))

    def events(self, resource_id: str | None = None, limit: int = 20) -> list[tuple[float, str, str]]:
        if resource_id:
            rows = self.db.execute("SELECT * FROM events WHERE resource=? ORDER BY ts DESC LIMIT ?",
                                   (resource_id, limit))
        else:
            rows = self.db.execute("SELECT * FROM events ORDER BY ts DESC LIMIT ?", (limit,))
        return list(rows)

    # -- model digests (what replicas verify a version's files against) ----------------------------
    def record_digest(self, name: str, version: int, sha256: str, run_id: str | None, source: str) -> None:
        """Keep the digest of a version's files as mlspec saw them when it was registered (`source` says how it
        was learnt: 'registered' by this workspace, or 'mlflow-tag' for a version registered elsewhere). MLflow's
        own tag is not trusted after this: whoever can write mlflow.db could rewrite it with the files."""
        self.db.execute("INSERT OR REPLACE INTO model_digests VALUES (?, ?, ?, ?, ?, ?)",
                        (name, version, sha256.lower(), run_id, source, time.time()))

    def model_digest(self, name: str, version: int) -> tuple[str, str | None] | None:
        """(sha256, run id) recorded for a version, or None."""
        row = self.db.execute("SELECT sha256, run_id FROM model_digests WHERE name=? AND version=?",
                              (name, version)).fetchone()
        return (str(row[0]), row[1]) if row else None

    # -- processes (the supervisor's desired and observed set) ------------------------------------
    def processes(self, owner: str | None = None) -> list[ProcessRow]:
        query = "SELECT id, owner, argv, env, cwd, log, health, pid, started, restarts, last_exit, state, desired, " \
                "policy, streak FROM processes" + (" WHERE owner=?" if owner else "") + " ORDER BY id"
        rows = self.db.execute(query, (owner,) if owner else ())
        return [ProcessRow(r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[4], r[5], r[6], r[7], r[8], r[9],
                           r[10], r[11], bool(r[12]), json.loads(r[13] or "{}"), r[14]) for r in rows]

    def want_process(self, row: ProcessRow) -> None:
        """Declare a process the supervisor must keep running (replacing one with the same id if different)."""
        with self._transaction():
            current = self.db.execute("SELECT argv, env, desired, policy FROM processes WHERE id=?",
                                      (row.id,)).fetchone()
            same = current and json.loads(current[0]) == row.argv and json.loads(current[1]) == row.env \
                and current[2] == 1
            if same:
                if json.loads(current[3] or "{}") != row.policy:  # what is watched changed, not what runs
                    self.db.execute("UPDATE processes SET policy=? WHERE id=?", (json.dumps(row.policy), row.id))
                return
            if current:  # a changed definition: the supervisor stops the old pid, then starts the new one
                retired = f"{row.id}#old{time.time()}"
                self.db.execute("UPDATE processes SET desired=0, id=? WHERE id=?", (retired, row.id))
            self.db.execute(
                "INSERT INTO processes (id, owner, argv, env, cwd, log, health, policy) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (row.id, row.owner, json.dumps(row.argv), json.dumps(row.env), row.cwd, row.log, row.health,
                 json.dumps(row.policy)))

    def release_processes(self, owner: str, keep: set[str] | None = None) -> None:
        """Mark an owner's processes (except `keep`) as no longer wanted; the supervisor stops them."""
        keep = keep or set()
        for row in self.processes(owner):
            if row.id not in keep:
                self.db.execute("UPDATE processes SET desired=0 WHERE id=?", (row.id,))

    def observe(self, process_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{k}=?" for k in fields)
        self.db.execute(f"UPDATE processes SET {sets} WHERE id=?", (*fields.values(), process_id))

    def forget_process(self, process_id: str) -> None:
        self.db.execute("DELETE FROM processes WHERE id=?", (process_id,))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")


class LockTimeout(Exception):
    pass


BRIEF = " brief"  # the lock file's mark of a holder that keeps it for milliseconds
BRIEF_HOLD_S = 5.0


@contextmanager
def exclusive(lock_path: Path, timeout: float, what: str = "another mlspec up or down",
              brief: bool = False) -> Iterator[None]:
    """Hold the workspace lock; it is released by the OS even if this process is killed. A `brief` holder (the
    autoscaler, for milliseconds at a time) says so in the lock file, and a waiter then waits for it up to
    BRIEF_HOLD_S whatever its own timeout: an `up` never fails because a scaler happened to be pushing a change."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+")  # noqa: SIM115 - held for the duration of the context
    started = time.monotonic()
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                patience = max(timeout, BRIEF_HOLD_S) if holder.endswith(BRIEF) else timeout
                if time.monotonic() - started >= patience:
                    raise LockTimeout(f"{what} is running on this workspace (pid {holder.removesuffix(BRIEF)}); "
                                      f"wait for it, or pass --lock-timeout SECONDS to wait longer") from None
                time.sleep(0.02 if holder.endswith(BRIEF) else 0.1)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}{BRIEF if brief else ''}")
        handle.flush()
        yield
    finally:
        handle.close()


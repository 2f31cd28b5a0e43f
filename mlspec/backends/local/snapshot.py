"""The published snapshot of a workspace's records: versioned JSON, written whole or not at all."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from mlspec.backends.local.shared_store import Store
from mlspec.backends.local.whoami import user_at_host
from mlspec.plan import Record

SNAPSHOT_VERSION = 1
_RECORD_FIELDS = tuple(f.name for f in fields(Record))


class SnapshotError(Exception):
    """A snapshot that cannot be read as it is; the message says why and what to do."""


@dataclass(frozen=True)
class Snapshot:
    workspace: str
    published_at: str  # ISO 8601, UTC
    by: str  # user@host that published it
    records: dict[str, Record]
    lineage: str = ""  # the workspace state it was published from: another lineage is another deployment
    serial: int = 0  # that state's serial when published

    def as_dict(self) -> dict[str, Any]:
        return {"version": SNAPSHOT_VERSION, "workspace": self.workspace, "published_at": self.published_at,
                "by": self.by, "lineage": self.lineage, "serial": self.serial,
                "records": [{name: getattr(record, name) for name in _RECORD_FIELDS}  # asdict's deep copy: 3x slower
                            for _, record in sorted(self.records.items())]}


def new_snapshot(workspace: str, records: dict[str, Record], lineage: str, serial: int) -> Snapshot:
    """A snapshot of `records` published now, by this user on this host."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return Snapshot(workspace, now, user_at_host(), dict(records), lineage, serial)


def encode(snapshot: Snapshot) -> str:
    return json.dumps(snapshot.as_dict(), separators=(",", ":"), sort_keys=True, default=str) + "\n"


def decode(text: str, where: str) -> Snapshot:
    """The snapshot in `text` (read from `where`), or SnapshotError saying what is wrong with it."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SnapshotError(f"{where} is not a published mlspec state (not JSON: {exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("version"), int):
        raise SnapshotError(f"{where} is not a published mlspec state (no 'version')")
    if data["version"] > SNAPSHOT_VERSION:
        raise SnapshotError(f"{where} was published by a newer mlspec (snapshot version {data['version']}, this "
                            f"mlspec reads {SNAPSHOT_VERSION}): upgrade mlspec")
    try:
        records = {}
        for item in data["records"]:
            record = Record(**{key: value for key, value in item.items() if key in _RECORD_FIELDS})
            if not isinstance(record.id, str) or not isinstance(record.spec, dict):
                raise TypeError("a record without an id or a spec")
            records[record.id] = record
        return Snapshot(str(data["workspace"]), str(data["published_at"]), str(data["by"]), records,
                        str(data.get("lineage", "")), int(data.get("serial", 0)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"{where} is not a published mlspec state ({type(exc).__name__}: {exc})") from None


def read_snapshot(store: Store, name: str) -> Snapshot | None:
    """The snapshot `name` in `store`, or None when none was published there."""
    stored = store.read(name)
    if stored is None:
        return None
    try:
        text = stored.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SnapshotError(f"{store.at(name)} is not a published mlspec state (not UTF-8: {exc})") from None
    return decode(text, store.at(name))


def write_snapshot(store: Store, name: str, snapshot: Snapshot) -> None:
    """Publish atomically: readers see the previous snapshot or this one whole, never a part."""
    store.write(name, encode(snapshot).encode("utf-8"))

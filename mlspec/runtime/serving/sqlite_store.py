"""Resolving models:/ URIs against a local MLflow sqlite store with the standard library alone.

Importing MLflow's client and SQLAlchemy store costs a replica about a second before it can serve; for the
store the local engine uses (a sqlite file, artifacts on the local disk) the same answers come from a few
read-only queries and a file copy. Anything else (a server, another database, a store whose tables look
different, a workspace other than the default) returns None and the caller asks MLflow.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlparse

_DELETED = "Deleted_Internal"  # MLflow's soft-deleted versions: invisible to its client
_VERSION_COLUMNS = {"name", "version", "status", "current_stage", "source", "storage_location"}


class NoVersions(LookupError):
    """The model has no versions at all."""


class StoreAnswer:
    """One version as MLflow's client would report it: status, download location, tags."""

    def __init__(self, version: int, status: str, location: str, tags: dict[str, str]) -> None:
        self.version, self.status, self.location, self.tags = version, status, location, tags


def database_path(tracking_uri: str) -> Path | None:
    """The file of a plain `sqlite:///PATH` URI that exists, or None (memory, query options, other schemes)."""
    if not tracking_uri.startswith("sqlite:///") or "?" in tracking_uri:
        return None
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    return path if path.is_file() else None


def lookup(tracking_uri: str, name: str, version: str | None, alias: str | None) -> StoreAnswer | None:
    """The version named by number, alias, or the highest number; None when this store is not one to read here.

    Raises LookupError with MLflow's kind of message when the store is readable but has no such version."""
    path = database_path(tracking_uri)
    if path is None or os.environ.get("MLFLOW_WORKSPACE"):
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)) as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(model_versions)")}
            if not columns >= _VERSION_COLUMNS:
                return None
            scope = " AND workspace = 'default'" if "workspace" in columns else ""
            number = _version_number(db, name, version, alias, scope)
            row = db.execute("SELECT status, storage_location, source FROM model_versions WHERE name = ? AND "
                             f"version = ? AND current_stage != ?{scope}", (name, number, _DELETED)).fetchone()
            if row is None:
                raise LookupError(f"Model Version (name={name}, version={number}) not found")
            tags = dict(db.execute(f"SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?{scope}",
                                   (name, number)).fetchall())
    except sqlite3.Error:
        return None  # locked, migrating, or not MLflow's layout: MLflow itself knows what to do
    status, storage, source = row
    return StoreAnswer(number, status, storage or source, tags)


def _version_number(db: sqlite3.Connection, name: str, version: str | None, alias: str | None, scope: str) -> int:
    if version and version != "latest":
        return int(version)
    if alias and alias != "latest":
        row = db.execute(f"SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?{scope}",
                         (name, alias)).fetchone()
        if row is None:
            raise LookupError(f"Registered model alias {alias} not found.")
        return int(row[0])
    row = db.execute(f"SELECT MAX(version) FROM model_versions WHERE name = ? AND current_stage != ?{scope}",
                     (name, _DELETED)).fetchone()
    if row is None or row[0] is None:
        raise NoVersions(name)
    return int(row[0])


def local_folder(location: str) -> Path | None:
    """The folder a `file://` (or bare absolute path) location names, when it is on this machine."""
    parsed = urlparse(location)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        folder = Path(unquote(parsed.path))
    elif parsed.scheme == "" and location.startswith("/"):
        folder = Path(location)
    else:
        return None
    return folder if folder.is_dir() else None


def copy_folder(folder: Path, destination: Path) -> Path:
    """Copy the model folder into `destination` as MLflow's download does (under the folder's own name)."""
    target = destination / folder.name
    shutil.copytree(folder, target, symlinks=False)
    return target

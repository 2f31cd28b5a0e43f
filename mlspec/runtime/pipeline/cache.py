"""Step results kept in the workspace: a step's folder is named by its content hash, and a finished one is reused."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from mlspec.runtime.tracking import SNAPSHOT_SKIP_DIRS, SNAPSHOT_SKIP_SUFFIXES

RECORD = "step.json"


def output_digest(path: str | Path) -> str:
    """sha256 over a file's bytes, or over a folder's files (their relative names and bytes) in a stable order."""
    place = Path(path)
    hasher = hashlib.sha256()
    if place.is_file():
        files = [(place.name, place)]
    else:
        files = []
        for current, dirs, names in os.walk(place):
            dirs.sort()
            files += [(Path(current, n).relative_to(place).as_posix(), Path(current, n)) for n in sorted(names)]
    for relative, file in files:
        hasher.update(f"{relative}\0".encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
        hasher.update(b"\0")
    return hasher.hexdigest()


def run_hash(static_hash: str, upstream: dict[str, str]) -> str:
    """A step's hash at run time: its own content and the digests of the upstream outputs it reads."""
    hasher = hashlib.sha256(f"{static_hash}\0".encode())
    for name in sorted(upstream):
        hasher.update(f"{name}\0{upstream[name]}\0".encode())
    return hasher.hexdigest()


def cached(folder: Path) -> dict[str, Any] | None:
    """The record of a step that finished in `folder`, if every output it wrote is still there."""
    try:
        record: dict[str, Any] = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return None
    paths = record.get("paths", {})
    if record.get("status") != "succeeded" or not all(Path(p).exists() for p in paths.values()):
        return None
    return record


def save(folder: Path, record: dict[str, Any]) -> None:
    """Written last, atomically: a step interrupted before it is never mistaken for a finished one."""
    partial = folder / f"{RECORD}.partial"
    partial.write_text(json.dumps(record, indent=1, sort_keys=True))
    partial.replace(folder / RECORD)


def snapshot(code: str, target: Path) -> str:
    """Copy the step's code folder into its run folder (caches and environments left out): the step's own copy."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(code, target, ignore=shutil.ignore_patterns(*SNAPSHOT_SKIP_DIRS, *(
        f"*{s}" for s in SNAPSHOT_SKIP_SUFFIXES)))
    return str(target)

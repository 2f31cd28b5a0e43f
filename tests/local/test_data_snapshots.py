"""Data snapshots are private copies: editing the source in place never changes a stored version, and a snapshot
that is altered or lost is drift that `up` repairs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.local.conftest import mlspec, status

pytestmark = pytest.mark.e2e

SPEC = """\
kind: Workspace
name: snapshots
---
kind: Data
name: table
path: data/table.csv
---
kind: Data
name: shards
path: shards/
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "table.csv").write_text("x,y\n1,2\n")
    (tmp_path / "shards").mkdir()
    for index in range(2):
        (tmp_path / "shards" / f"part-{index}.csv").write_text(f"x\n{index}\n")
    (tmp_path / "mlspec.yaml").write_text(SPEC)
    mlspec("up", str(tmp_path), "--yes")
    return tmp_path


def snapshot(spec: Path, name: str) -> Path:
    return Path(status(spec)["resources"][f"data/{name}"]["outputs"]["path"])


def changes(spec: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    planned = json.loads(mlspec("plan", str(spec), "--json").stdout)["changes"]
    return {c["id"]: c for c in planned if c["action"] != "noop"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_editing_the_source_in_place_leaves_the_stored_version_as_it_was(spec: Path) -> None:
    source = spec / "data" / "table.csv"
    stored = snapshot(spec, "table")
    before, digest = stored.read_bytes(), sha256(stored)
    assert digest == sha256(source)
    with source.open("r+b") as handle:  # the same file (inode), new bytes: what an editor saving in place does
        handle.seek(0)
        handle.write(b"a,b")
    assert stored.read_bytes() == before and sha256(stored) == digest
    change = changes(spec)["data/table"]
    assert (change["action"], change["reasons"]) == ("update", ["files changed (data/table.csv)"])
    mlspec("up", str(spec), "--yes")
    assert snapshot(spec, "table").read_bytes() == source.read_bytes()
    assert stored.read_bytes() == before  # the earlier version is still there, unchanged
    assert changes(spec) == {}


def test_a_snapshot_is_a_read_only_copy_not_a_link(spec: Path) -> None:
    stored, source = snapshot(spec, "table"), spec / "data" / "table.csv"
    assert stored.stat().st_ino != source.stat().st_ino and stored.stat().st_nlink == 1
    assert not stored.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def test_an_altered_snapshot_is_taken_again(spec: Path) -> None:
    stored = snapshot(spec, "table")
    os.chmod(stored, 0o644)
    stored.write_text("x,y\n9,9\n")
    change = changes(spec)["data/table"]
    assert (change["verb"], change["reasons"]) == ("re-snapshot", ["its snapshot was altered (data/table.csv)"])
    mlspec("up", str(spec), "--yes")
    assert snapshot(spec, "table").read_bytes() == (spec / "data" / "table.csv").read_bytes()
    assert changes(spec) == {}


def test_a_file_added_to_a_folder_snapshot_is_drift(spec: Path) -> None:
    stored = snapshot(spec, "shards")
    os.chmod(stored, 0o755)
    (stored / "extra.csv").write_text("x\n7\n")
    assert changes(spec)["data/shards"]["reasons"] == ["its snapshot was altered (shards/extra.csv)"]
    mlspec("up", str(spec), "--yes")
    assert sorted(p.name for p in snapshot(spec, "shards").iterdir()) == ["part-0.csv", "part-1.csv"]
    assert changes(spec) == {}


def test_a_lost_snapshot_is_taken_again(spec: Path) -> None:
    stored = snapshot(spec, "table")
    shutil.rmtree(stored.parent)
    assert changes(spec)["data/table"]["reasons"] == [f"its snapshot is missing ({stored})"]
    mlspec("up", str(spec), "--yes")
    assert stored.read_bytes() == (spec / "data" / "table.csv").read_bytes()
    assert changes(spec) == {}

"""Workspace files are their owner's alone: folders tightened to 0700, JSON written 0600, umask 077 meanwhile."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mlspec.backends.local.keys import load_keys, write_json_atomically
from mlspec.backends.local.paths import WorkspacePaths, owner_only


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_workspace_made_before_is_tightened(tmp_path: Path) -> None:
    root = tmp_path / ".mlspec"
    (root / "logs").mkdir(parents=True, mode=0o755)
    root.chmod(0o755)
    WorkspacePaths(root).create()
    assert mode(root) == 0o700 and mode(root / "logs") == 0o700 and mode(root / "artifacts") == 0o700


def test_json_is_written_owner_only_even_over_a_leftover_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "endpoints" / "ep" / "gateway.json"
    target.parent.mkdir(parents=True)
    target.with_suffix(".tmp").write_text("left by an interrupted write")
    target.with_suffix(".tmp").chmod(0o644)
    write_json_atomically(target, {"endpoint": "ep"})
    assert mode(target) == 0o600
    load_keys(WorkspacePaths(tmp_path), "ep")
    assert mode(tmp_path / "endpoints" / "ep" / "keys.json") == 0o600


def test_owner_only_sets_the_umask_for_a_while(tmp_path: Path) -> None:
    before = os.umask(0o022)
    try:
        with owner_only():
            (tmp_path / "inside").write_text("x")
            (tmp_path / "folder").mkdir()
        (tmp_path / "after").write_text("x")
        assert mode(tmp_path / "inside") == 0o600 and mode(tmp_path / "folder") == 0o700
        assert mode(tmp_path / "after") == 0o644  # restored: only the engine's work is made private
    finally:
        os.umask(before)

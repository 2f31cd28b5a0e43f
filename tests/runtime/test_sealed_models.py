"""Model folders only root can change are verified and loaded in place (a model baked into an image); any other is
copied first, so nothing can swap the files between the check and the load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlspec.runtime.serving.integrity import sealed

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs files owned by root")


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Root's files, seen by a process that is not root."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    model = tmp_path / "model"
    (model / "data").mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "data" / "model.onnx").write_bytes(b"graph")
    for path in (tmp_path, model, model / "data"):
        path.chmod(0o755)
    return model


def test_root_only_files_are_sealed(folder: Path) -> None:
    assert sealed(folder)


def test_a_file_others_can_write_is_not(folder: Path) -> None:
    (folder / "data" / "model.onnx").chmod(0o666)
    assert not sealed(folder)


def test_a_folder_above_others_can_write_is_not_unless_sticky(folder: Path) -> None:
    folder.parent.chmod(0o777)
    assert not sealed(folder)
    folder.parent.chmod(0o1777)  # as /tmp: no one else can rename or remove root's entries
    assert sealed(folder)


def test_a_symbolic_link_is_not(folder: Path, tmp_path: Path) -> None:
    (folder / "extra").symlink_to(tmp_path / "elsewhere")
    assert not sealed(folder)


def test_root_itself_always_copies(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert not sealed(folder)

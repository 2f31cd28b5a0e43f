"""Content digests of the files a resource reads (code folders, data, requirements)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# Never part of a snapshot: caches, virtualenvs, VCS data and mlspec's own workspace folders.
IGNORED_DIRS = frozenset({".git", "__pycache__", ".mlspec", ".venv", "venv", ".ipynb_checkpoints",
                          ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules"})
IGNORED_SUFFIXES = (".pyc", ".pyo")

_cache: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes; cached by size and modification time within the process."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    digest = _cache.get(key)
    if digest is None:
        hasher = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
        digest = _cache[key] = hasher.hexdigest()
    return digest


def walk_files(folder: Path) -> list[Path]:
    """Files of a folder in a stable order, skipping caches and tool folders."""
    found: list[Path] = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS)
        found.extend(Path(current) / f for f in sorted(files) if not f.endswith(IGNORED_SUFFIXES))
    return found


def tree_digests(path: Path, root: Path) -> dict[str, str]:
    """{path relative to root (posix): sha256} for a file, or every file under a folder."""
    files = walk_files(path) if path.is_dir() else [path]
    out: dict[str, str] = {}
    for file in files:
        try:
            relative = file.relative_to(root).as_posix()
        except ValueError:
            # Outside the spec folder: `../shared/train.py`, so a checkout elsewhere (CI, a colleague's machine,
            # a base revision) hashes the same files the same way.
            relative = Path(os.path.relpath(file, root)).as_posix()
        out[relative] = file_digest(file)
    return out

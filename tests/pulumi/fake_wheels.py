"""Wheels made for a test: real zip files whose METADATA declares the given requirements."""

from __future__ import annotations

import zipfile
from pathlib import Path


def make_wheel(folder: Path, name: str, version: str = "1.0", requires: tuple[str, ...] = (),
               extras: tuple[str, ...] = ()) -> Path:
    """`folder/<name>-<version>-py3-none-any.whl` with a METADATA that lists `requires` as Requires-Dist."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = name.replace("-", "_")
    path = folder / f"{stem}-{version}-py3-none-any.whl"
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
             *(f"Provides-Extra: {extra}" for extra in extras), *(f"Requires-Dist: {r}" for r in requires)]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{stem}/__init__.py", "")
        archive.writestr(f"{stem}-{version}.dist-info/METADATA", "\n".join(lines) + "\n")
    return path

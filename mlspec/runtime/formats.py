"""Recognising model file formats without loading them."""

from __future__ import annotations

import zipfile
from pathlib import Path


def is_torchscript(path: Path) -> bool:
    """torch.jit.save writes a zip holding `*/constants.pkl` and `*/code/`; torch.save of a state dict or a
    pickled module holds neither."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False

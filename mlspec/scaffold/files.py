"""Writing scaffolded files: identical ones are left alone, differing ones are refused unless forced."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlspec.backends.pulumi.render import templates


class ScaffoldError(Exception):
    """Files could not be written as asked (they exist with other content, or a folder is in the way)."""


@dataclass
class Written:
    """What a scaffold did to each of its files, as paths relative to its folder."""

    created: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def render(folder: str, template: str, **values: Any) -> str:
    return templates(folder).get_template(template).render(**values)


def write_files(root: Path, files: Mapping[str, str], force: bool) -> Written:
    """Write `files` (relative path -> text) under `root`. Nothing is written when any file exists with other
    content and `force` is not set: the error lists every such file, so the user sees them all at once."""
    written = Written()
    conflicts: list[str] = []
    blocked: list[str] = []
    for relative, text in files.items():
        path = root / relative
        if _blocking_file(root, path) or path.is_dir():
            blocked.append(relative)
        elif path.exists():
            if path.read_bytes() == text.encode("utf-8"):
                written.unchanged.append(relative)
            else:
                conflicts.append(relative)
        else:
            written.created.append(relative)
    if blocked:
        raise ScaffoldError(f"cannot write {', '.join(blocked)} under {root}: a file or folder of that name is in "
                            "the way")
    if conflicts and not force:
        raise ScaffoldError(f"{len(conflicts)} file{'s' if len(conflicts) != 1 else ''} under {root} would be "
                            f"overwritten: {', '.join(conflicts)}; pass --force to replace "
                            f"{'them' if len(conflicts) != 1 else 'it'}")
    written.replaced.extend(conflicts)
    for relative in [*written.created, *written.replaced]:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[relative].encode("utf-8"))  # the same bytes on every platform
    return written


def _blocking_file(root: Path, path: Path) -> bool:
    """Whether a parent folder of `path` (below `root`) exists as a file."""
    parent = path.parent
    while parent != root and parent != parent.parent:
        if parent.exists() and not parent.is_dir():
            return True
        parent = parent.parent
    return False

"""What the model registry holds, as plans read it: latest versions, aliases, and versions by their source files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from mlspec.runtime.serving.integrity import listing_digest


@dataclass(frozen=True)
class RegistryView:
    """A read of the registry before `up`: enough to number new versions as the registry will, and to know which
    aliases exist already. Read by the back end that owns the registry; None where it could not be read."""

    latest: dict[str, int] = field(default_factory=dict)  # model name -> highest version
    aliases: dict[str, dict[str, int]] = field(default_factory=dict)  # model name -> alias -> version
    sources: dict[str, dict[str, int]] = field(default_factory=dict)  # model name -> source digest -> version
    versions: dict[str, set[int]] = field(default_factory=dict)  # model name -> every version it has

    def next_version(self, name: str) -> int:
        """The number the registry gives the next version of `name` (one more than its highest)."""
        return self.latest.get(name, 0) + 1

    def has_alias(self, name: str, alias: str) -> bool:
        return alias in self.aliases.get(name, {})


def source_digest(files: Mapping[str, str], source: str) -> str | None:
    """The digest registration tags a model from `source` with, computed from a graph node's file digests
    (paths relative to the spec root -> sha256): the file's name for a file, paths inside it for a folder."""
    root = PurePosixPath(source)
    if source in files:
        return listing_digest([(root.name, files[source])])
    inside = {PurePosixPath(path).relative_to(root).as_posix(): digest for path, digest in files.items()
              if PurePosixPath(path).is_relative_to(root)}
    return listing_digest(inside.items()) if inside else None

"""The wheels an image installs: the closure of its requirements in a wheelhouse, read from the wheels' metadata.

An offline build installs from the wheels its context sends. Sending the whole wheelhouse would make every image's
context as large as the largest package anyone needs (torch alone is 190 MB) and tie every image's tag to every
wheel in it, so a wheel added for one environment would rebuild them all. Each context gets the wheels its
requirements reach instead: a requirement's wheels, then those of the requirements their metadata declares (with
the extras asked for), and so on.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable
from email.parser import HeaderParser
from functools import cache
from pathlib import Path

from packaging.markers import Marker, default_environment
from packaging.requirements import InvalidRequirement, Requirement

# Markers are evaluated for each of these Pythons: an image's Python may differ from the one compiling it.
PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14")


def normalized(name: str) -> str:
    """A distribution's name as PEP 503 compares names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_closure(wheelhouse: Path, requirements: Iterable[str]) -> list[Path] | None:
    """The wheels of `wheelhouse` that installing `requirements` (requirements.txt lines) can use, sorted; None
    when a line is not a plain requirement (an option, a URL, a path): then only the whole wheelhouse is safe."""
    by_name: dict[str, list[Path]] = {}
    for wheel in sorted(wheelhouse.iterdir()):
        if wheel.is_file() and wheel.suffix == ".whl":
            by_name.setdefault(normalized(wheel.name.split("-", 1)[0]), []).append(wheel)
    pending: list[tuple[str, frozenset[str]]] = []
    for line in requirements:
        text = line.split(" #", 1)[0].strip()
        if not text or text.startswith("#"):
            continue
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            return None
        if requirement.url:
            return None
        if _applies(requirement.marker, frozenset()):
            pending.append((normalized(requirement.name), frozenset(requirement.extras)))
    seen: set[tuple[str, frozenset[str]]] = set()
    chosen: set[Path] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for wheel in by_name.get(name, []):  # none: the base image or the runtime has it, or pip will say so
            chosen.add(wheel)
            for dependency in _requires(wheel):
                if _applies(dependency.marker, extras):
                    pending.append((normalized(dependency.name), frozenset(dependency.extras)))
    return sorted(chosen)


@cache
def _requires(wheel: Path) -> tuple[Requirement, ...]:
    """The Requires-Dist of a wheel's METADATA (a wheel is named by its version: its content never changes)."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next((n for n in archive.namelist()
                         if n.count("/") == 1 and n.endswith(".dist-info/METADATA")), None)
        if metadata is None:
            return ()
        headers = HeaderParser().parsestr(archive.read(metadata).decode("utf-8", errors="replace"))
    found = []
    for text in headers.get_all("Requires-Dist") or []:
        try:
            found.append(Requirement(text))
        except InvalidRequirement:
            continue
    return tuple(found)


def _applies(marker: Marker | None, extras: frozenset[str]) -> bool:
    """Whether a dependency with this marker is installed for some supported Python on Linux with these extras."""
    if marker is None:
        return True
    return any(marker.evaluate({**environment, "extra": extra})
               for environment in _linux_pythons() for extra in extras or {""})


@cache
def _linux_pythons() -> tuple[dict[str, str], ...]:
    """The marker environments of the supported Pythons on Linux (made once: markers are evaluated per wheel)."""
    here = {str(k): str(v) for k, v in default_environment().items()}
    here.update(sys_platform="linux", platform_system="Linux", os_name="posix")
    return tuple({**here, "python_version": python, "python_full_version": f"{python}.0"} for python in PYTHONS)

"""Build contexts staged next to the program: only what an image needs, so any Docker builder sends little."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import mlspec
from mlspec.pulumi.wheels import wheel_closure

BUILD_DIR = ".build"  # inside the project folder; regenerated on every run, never committed
RUNTIME_SKIP = {"__pycache__", "templates", "pulumi", "cli", "backends"}  # top-level parts no container uses


class StaleProgram(Exception):
    """A file the program was compiled against has changed: the image tag would lie about its content."""


def _fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)  # a wheelhouse can be large: hard links cost nothing
    except OSError:
        shutil.copy2(source, target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def runtime_source() -> Path:
    """The folder of the mlspec package this program runs with (a checkout or an installed wheel)."""
    return Path(mlspec.__file__).resolve().parent


def copy_runtime(target: Path) -> None:
    """mlspec's own package, less what only the command line and compilers use."""
    source = runtime_source()
    for current, dirs, files in os.walk(source):
        rel = Path(current).relative_to(source)
        skip = RUNTIME_SKIP if rel == Path(".") else {"__pycache__"}
        dirs[:] = sorted(d for d in dirs if d not in skip)
        for name in sorted(files):
            if name.endswith(".py"):
                _link_or_copy(Path(current) / name, target / "mlspec" / rel / name)


def image_tag(content_hash: str, *build_inputs: str) -> str:
    """The tag of an image: the resource's content hash together with everything else its build reads (base
    image, mlspec's runtime, the wheels), so a tag never names two different images and a container wired to it
    is replaced whenever what it runs changes."""
    return hashlib.sha256("\0".join((content_hash, *build_inputs)).encode()).hexdigest()


def context_digest(folder: Path) -> str:
    """What a staged environment context holds: every file's path and bytes, except wheels, whose file names
    already carry their version (hashing hundreds of megabytes on every run would cost seconds)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        digest.update(rel.encode() + b"\0")
        if not rel.startswith("wheels/"):
            digest.update(_sha256(path).encode())
    return digest.hexdigest()


def build_context_digest(folder: Path, dockerfile: str) -> str:
    """The content hash of what a Docker build of `folder` reads: the Dockerfile's place and every file the
    context sends (those `.dockerignore` leaves in: its patterns with ``*``, ``?``, ``**`` and ``!`` exceptions)."""
    patterns = _dockerignore(folder)
    digest = hashlib.sha256(f"{dockerfile}\0".encode())
    kept = {(folder / dockerfile).resolve(), (folder / ".dockerignore").resolve()}  # Docker always sends these
    for current, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(current) / name
            rel = path.relative_to(folder).as_posix()
            if path.resolve() in kept or not _ignored(rel, patterns):
                digest.update(f"{rel}\0{_sha256(path)}\0".encode())
    return digest.hexdigest()


def _dockerignore(folder: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """(exception, pattern) for each line of the context's .dockerignore, in order."""
    path = folder / ".dockerignore"
    found: list[tuple[bool, re.Pattern[str]]] = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
        found.append((exception, re.compile(_glob_regex(pattern))))
    return found


def _glob_regex(pattern: str) -> str:
    parts = re.split(r"(\*\*/?|\*|\?)", pattern)
    wildcards = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return "".join(wildcards.get(part, re.escape(part)) for part in parts)


def _ignored(rel: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """The last pattern that matches the file or a folder above it decides, as Docker's does."""
    segments = rel.split("/")
    prefixes = ["/".join(segments[:i]) for i in range(1, len(segments) + 1)]
    ignored = False
    for exception, pattern in patterns:
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            ignored = not exception
    return ignored


def stage_environment(name: str, requirements: Path, wheelhouse: str | None, with_runtime: bool = True) -> Path:
    """`.build/NAME/`: requirements.txt, mlspec/ (unless the image is built on the runtime image, which has it) and
    wheels/: empty unless building offline, else the wheelhouse's wheels that the requirements reach."""
    folder = _fresh(Path(BUILD_DIR) / name)
    shutil.copy2(requirements, folder / "requirements.txt")
    if with_runtime:
        copy_runtime(folder)
    wheels = folder / "wheels"
    wheels.mkdir()
    if wheelhouse:
        lines = requirements.read_text(encoding="utf-8").splitlines()
        needed = wheel_closure(Path(wheelhouse), lines)
        for wheel in needed if needed is not None else sorted(Path(wheelhouse).iterdir()):
            if wheel.is_file():
                _link_or_copy(wheel, wheels / wheel.name)
    return folder


def stage_job(name: str, spec_root: str, files: dict[str, str]) -> Path:
    """`.build/NAME/files/`: the job's code and data, each checked against the digest it was compiled with."""
    folder = _fresh(Path(BUILD_DIR) / name)
    (folder / "files").mkdir()
    changed: list[str] = []
    for rel, digest in sorted(files.items()):
        source = Path(spec_root) / rel
        if not source.is_file() or _sha256(source) != digest:
            changed.append(rel)
            continue
        _link_or_copy(source, folder / "files" / rel)
    if changed:
        raise StaleProgram(f"{_names(changed)} changed since this program was compiled; run `mlspec compile` again")
    return folder


def _names(paths: Iterable[str]) -> str:
    listed = sorted(paths)
    return ", ".join(listed[:5]) + (f" and {len(listed) - 5} more" if len(listed) > 5 else "")

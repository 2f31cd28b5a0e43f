"""A spec as it was at a git revision: its folder read from git into a temporary copy, the working tree untouched."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class RevisionError(Exception):
    """The revision cannot be read: not a git repository, an unknown revision, git missing."""


@dataclass(frozen=True)
class Revision:
    """The revision a plan compares with, as the user named it and as git resolved it."""

    ref: str  # as given: "main", "origin/main", "HEAD~1"
    commit: str  # the commit whose spec is read
    merge_base: bool  # `commit` is the merge base of `ref` and HEAD (what a pull request's diff starts from)

    @property
    def short(self) -> str:
        return self.commit[:7]

    def describe(self) -> str:
        how = f"merge base with {self.ref}" if self.merge_base else self.ref
        return f"{self.short} ({how})"


def _git(folder: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise RevisionError("git is not installed: `plan --base` reads the base revision with git") from exc
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise RevisionError(message[-1] if message else f"git {' '.join(args)} failed")
    return done.stdout


def resolve_revision(folder: Path, ref: str, merge_base: bool = True) -> Revision:
    """`ref` as a commit; with `merge_base`, the commit where HEAD's history left `ref`'s (as `git diff ref...`)."""
    if ref.startswith("-"):
        raise RevisionError(f"'{ref}' is not a revision")
    repository_root(folder)  # not a repository at all says so, rather than "unknown revision"
    try:
        commit = _git(folder, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}").decode()
    except RevisionError:
        raise RevisionError(f"'{ref}' is not a commit of the repository at {folder}: fetch it first "
                            f"(e.g. `git fetch origin {ref.removeprefix('origin/')}`), or name a branch, tag "
                            "or commit that exists") from None
    commit = commit.strip()
    if not merge_base:
        return Revision(ref, commit, False)
    try:
        base = _git(folder, "merge-base", commit, "HEAD").decode().strip()
    except RevisionError:
        return Revision(ref, commit, False)  # unrelated histories or no HEAD yet: the revision itself
    return Revision(ref, base, base != commit)


def repository_root(folder: Path) -> Path:
    try:
        return Path(_git(folder, "rev-parse", "--show-toplevel").decode().strip())
    except RevisionError:
        raise RevisionError(f"{folder} is not in a git repository: `plan --base` compares with a git revision; "
                            "without git, plan against the deployed state (`mlspec plan`)") from None


@contextmanager
def spec_at(paths: Sequence[str | Path], revision: Revision, whole: bool = False) -> Iterator[list[Path]]:
    """The spec `paths` as they were at `revision`, in a temporary folder that is removed afterwards.

    Only the spec root (the first path's folder) is read, unless `whole`: then the whole repository, for a spec
    that reads files outside its root (e.g. `code: ../shared`). A path that did not exist then is left out, so
    the spec loads as it was."""
    first = Path(paths[0]) if paths else Path(".")
    folder = (first if first.is_dir() else first.parent).resolve()
    top = repository_root(folder)
    wanted = "." if whole else _inside(top, folder)
    with tempfile.TemporaryDirectory(prefix="mlspec-base-") as tmp:
        root = Path(tmp)
        if _exists(top, revision.commit, wanted):
            archive = _git(top, "archive", "--format=tar", revision.commit, "--", wanted)
            _extract(archive, root)
        (root / _inside(top, folder)).mkdir(parents=True, exist_ok=True)
        yield [root / _inside(top, Path(p).resolve()) for p in paths] if paths else [root / _inside(top, folder)]


def _extract(archive: bytes, root: Path) -> None:
    """Unpack `git archive` output under `root`, refusing any member that would land (or link) outside it."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
            tar.extractall(root, filter="data")
            return
        base = root.resolve()
        for member in tar.getmembers():
            target = (base / member.name).resolve()
            linked = target
            if member.issym():
                linked = (target.parent / member.linkname).resolve()
            elif member.islnk():  # a hard link names another member of the archive
                linked = (base / member.linkname).resolve()
            if not (target.is_relative_to(base) and linked.is_relative_to(base)):
                raise RevisionError(f"the revision's {member.name} points outside the spec; not read")
        tar.extractall(root)  # every member was checked above


def _inside(top: Path, path: Path) -> str:
    try:
        return path.relative_to(top).as_posix() or "."
    except ValueError:
        raise RevisionError(f"{path} is outside the repository at {top}") from None


def _exists(top: Path, commit: str, path: str) -> bool:
    """Whether `path` existed at `commit` (git archive fails on a path that did not)."""
    return path == "." or bool(_git(top, "ls-tree", "--name-only", "--full-tree", commit, "--", path).strip())

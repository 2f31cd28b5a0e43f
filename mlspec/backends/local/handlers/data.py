"""Data locally: a read-only snapshot per content version, so a job always reads what was hashed."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from mlspec.backends.local.context import Context
from mlspec.graph import Node
from mlspec.graph.digest import file_digest, walk_files
from mlspec.plan import Record

_FICLONE = 0x40049409  # Linux ioctl: share the source's blocks copy-on-write (btrfs, xfs, bcachefs, ...)


def _copy(src: str | Path, dst: str | Path) -> None:
    """A private copy: a reflink where the filesystem shares blocks copy-on-write, else the bytes. Never a hard
    link, which would let an edit of the source file in place change the stored version."""
    with open(src, "rb") as source, open(dst, "wb") as target:
        try:
            fcntl.ioctl(target.fileno(), _FICLONE, source.fileno())
        except OSError:  # no reflinks here (ext4, tmpfs, another filesystem): copy
            source.seek(0)
            target.truncate(0)
            shutil.copyfileobj(source, target, 1 << 20)
    shutil.copystat(src, dst)
    # Read-only (a snapshot is not edited) and its owner's alone, whatever the source's mode.
    os.chmod(dst, stat.S_IMODE(os.stat(dst).st_mode) & 0o500)


def stamp(target: Path) -> str:
    """Size, modification time and inode of every file of a snapshot, as one digest: cheap to compare on every plan,
    and any write to a snapshot file, or its replacement, changes it."""
    hasher = hashlib.sha256()
    for file in walk_files(target) if target.is_dir() else [target]:
        info = file.stat()
        hasher.update(f"{file.relative_to(target.parent)}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_ino}\0".encode())
    return hasher.hexdigest()


def _source_key(source: Path, root: Path) -> str:
    """The name the graph hashed the source under (graph.digest.tree_digests' rule)."""
    try:
        return source.relative_to(root).as_posix()
    except ValueError:
        return source.as_posix()


def altered(target: Path, digests: dict[str, str], key: str) -> list[str]:
    """The files of a snapshot whose bytes are not those hashed (`digests`, named from `key`): changed, missing
    or extra."""
    if target.is_dir():
        found = {f"{key}/{file.relative_to(target).as_posix()}": file for file in walk_files(target)}
    else:
        found = {key: target} if target.exists() else {}
    changed = [name for name, file in found.items() if digests.get(name) != file_digest(file)]
    return sorted(changed + [name for name in digests if name not in found])


def _linked(target: Path) -> bool:
    return any(file.stat().st_nlink > 1 for file in (walk_files(target) if target.is_dir() else [target]))


def check(record: Record) -> str | None:
    """Why the recorded snapshot is no longer what was stored, or None when it is intact."""
    target = Path(str(record.outputs.get("path", "")))
    if not record.outputs.get("path") or not target.exists():
        return f"its snapshot is missing ({target})"
    recorded = record.outputs.get("stamp")
    if recorded is None:  # taken by an earlier mlspec, which hard-linked files: the source's edits reach it
        return "its snapshot shares its files with the source (a hard link); a private copy is taken" \
            if _linked(target) else None
    if recorded == stamp(target):
        return None
    changed = altered(target, record.files, str(record.outputs.get("source", "")))
    if not changed:
        return None  # touched, not changed
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    return f"its snapshot was altered ({shown})"


def apply(ctx: Context, node: Node) -> dict[str, Any]:
    source = ctx.graph.spec.files[node.id]["path"]
    snapshot = ctx.paths.data(node.name, node.hash)
    target = snapshot / source.name
    key = _source_key(source, ctx.graph.spec.root)
    previous = ctx.outputs(node.id)
    # A snapshot is reused only when its bytes are what the hash says: an altered one is taken again.
    intact = target.exists() and not _linked(target) and (
        previous.get("stamp") == stamp(target) or not altered(target, node.files, key))
    if not intact:
        tmp = snapshot.with_name(snapshot.name + ".tmp")
        _remove(tmp)
        tmp.mkdir(parents=True)
        if source.is_dir():
            shutil.copytree(source, tmp / source.name, copy_function=_copy)
            for folder in (tmp / source.name, *(p for p in (tmp / source.name).rglob("*") if p.is_dir())):
                folder.chmod(0o700)  # copytree gives each folder its source's mode
        else:
            _copy(source, tmp / source.name)
        _remove(snapshot)
        tmp.rename(snapshot)  # complete or absent: an interrupted copy is never mistaken for a snapshot
    return {"path": str(target.resolve()), "version": node.hash[:12], "source": key, "stamp": stamp(target)}


def _remove(folder: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(folder)


def delete(ctx: Context, record: Record, purge: bool) -> None:
    if purge:
        shutil.rmtree(ctx.paths.root / "datastore" / record.id.split("/", 1)[1], ignore_errors=True)

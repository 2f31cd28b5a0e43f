"""Where a shared state location keeps its objects (the snapshot, the lock): a folder, or a bucket of an object store,
behind one small interface, so that the snapshot and the lock are written once for both."""

from __future__ import annotations

import errno
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# File systems without hard links (some SMB mounts) answer these: the object is then created with O_EXCL.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}


class StoreError(OSError):
    """A store that cannot be reached, or that refused a request; the message says where and why."""


@dataclass(frozen=True)
class Stored:
    data: bytes
    tag: str  # this version of the object: a later write gives another tag


class Store(Protocol):
    @property
    def where(self) -> str:
        """The location as a person names it: a folder, or s3://bucket/prefix."""

    def at(self, name: str) -> str:
        """Where the object `name` lies, as a person names it."""

    def read(self, name: str) -> Stored | None:
        """The object's content and version; None when there is none."""

    def write(self, name: str, data: bytes) -> None:
        """Replace the object whole: readers see the previous content or this one, never a part."""

    def create(self, name: str, data: bytes) -> bool:
        """Create the object with its whole content in one step; False when it exists already."""

    def delete(self, name: str, tag: str) -> bool:
        """Delete the object if it is still the version `tag`; False when it was replaced or is gone."""

    def exists(self, name: str) -> bool: ...


@dataclass(frozen=True)
class FolderStore:
    """A folder of this machine: a local disk, a network share or a mounted volume (NFS, SMB)."""

    folder: Path

    @property
    def where(self) -> str:
        return str(self.folder)

    def at(self, name: str) -> str:
        return str(self.folder / name)

    def read(self, name: str) -> Stored | None:
        try:
            with open(self.folder / name, "rb") as handle:
                data, status = handle.read(), os.fstat(handle.fileno())
        except FileNotFoundError:
            return None
        return Stored(data, _tag(status))

    def write(self, name: str, data: bytes) -> None:
        """A rename within the folder replaces the file in one step, also on NFS."""
        path = self.folder / name
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self._partial(name)
        try:
            _write_synced(partial, data)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        _sync_folder(self.folder)

    def create(self, name: str, data: bytes) -> bool:
        """A hard link of a complete file: atomic on local file systems and NFS alike."""
        path = self.folder / name
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self._partial(name)
        try:
            _write_synced(partial, data)
            try:
                os.link(partial, path)
                return True
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in _NO_LINKS:
                    raise
            return _create_exclusive(path, data)
        finally:
            partial.unlink(missing_ok=True)

    def delete(self, name: str, tag: str) -> bool:
        # A file system has no conditional delete: between this check and the unlink another command could replace
        # the file (a lock broken and taken again within that instant); the window is one system call wide.
        path = self.folder / name
        try:
            if _tag(path.stat()) != tag:
                return False
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def exists(self, name: str) -> bool:
        return (self.folder / name).exists()

    def _partial(self, name: str) -> Path:
        return self.folder / f".{name}.{uuid.uuid4().hex[:12]}.tmp"


def _tag(status: os.stat_result) -> str:
    return f"{status.st_ino}-{status.st_size}-{status.st_mtime_ns}"


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _create_exclusive(path: Path, data: bytes) -> bool:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    return True


def _sync_folder(folder: Path) -> None:
    """Make a rename itself durable (a crash right after it keeps the new file)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:  # some network file systems refuse fsync on folders; the rename is still atomic
        pass
    finally:
        os.close(descriptor)


def store_at(location: str) -> Store:
    """The store a (checked, resolved) state location names."""
    from mlspec.spec.state_location import folder_of, s3_bucket_and_prefix, scheme_of

    if scheme_of(location) == "s3":
        from mlspec.backends.local.s3_store import S3Store

        return S3Store(*s3_bucket_and_prefix(location))
    return FolderStore(folder_of(location))

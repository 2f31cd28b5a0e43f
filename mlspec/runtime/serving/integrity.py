"""The model digest: one SHA-256 over every file of an MLflow model folder, checked before anything is unpickled."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

TAG = "mlspec.sha256"  # the registered version's tag that holds the digest
SOURCE_TAG = "mlspec.source_sha256"  # listing_digest of the files a version was registered from (reuse by content)
_CHUNK = 1 << 20
# MLflow writes this name/version note into a local store's model folder whenever someone loads `models:/...`
# without a destination; it is never unpickled, and counting it would make every such load break verification.
MLFLOW_WRITES = frozenset({"registered_model_meta"})


class IntegrityError(Exception):
    """The files do not match the registered digest, or there is no digest to check them against."""


def model_digest(folder: str | os.PathLike[str]) -> str:
    """SHA-256 over, for each file in sorted relative POSIX paths, `relpath NUL sha256(bytes).hex LF`.

    Hashing each file separately (then hashing the list) frames paths and contents unambiguously: bytes moved
    from one file to another, or a file renamed, change the digest. Every file counts, hidden ones included.
    """
    root = Path(folder)
    files = sorted((path.relative_to(root).as_posix(), path) for path in root.rglob("*") if path.is_file())
    return listing_digest((relative, file_sha256(path)) for relative, path in files)


def listing_digest(entries: Iterable[tuple[str, str]]) -> str:
    """The digest of a listing of (relative POSIX path, sha256 hex) pairs, framed as `model_digest` frames them:
    a digest of files known only by their hashes (a plan's file digests) matches one computed from the files."""
    digest = hashlib.sha256()
    for relative, file_sha256 in sorted(entries):
        if relative not in MLFLOW_WRITES:
            digest.update(relative.encode() + b"\0" + file_sha256.encode() + b"\n")
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    file_digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            file_digest.update(chunk)
    return file_digest.hexdigest()


def sealed(folder: Path) -> bool:
    """Whether no one but root can change the folder's files: this process is not root, and the folder, everything in
    it and every folder above it are root's, writable by no one else, with no symbolic link among them (a model
    baked into an image). Such files are verified and loaded where they are: no private copy is needed, so a
    server with a read-only root filesystem and no writable /tmp can serve them."""
    if os.geteuid() == 0:
        return False
    try:
        return all(_root_only(path, above=False) for path in [folder, *folder.rglob("*")]) and \
            all(_root_only(path, above=True) for path in folder.parents)
    except OSError:
        return False


def _root_only(path: Path, above: bool) -> bool:
    """Root's, and writable by no one else; a folder above the model may be a sticky one (/tmp), in which no one
    else can rename or remove root's entries."""
    info = path.lstat()
    if info.st_uid != 0 or stat.S_ISLNK(info.st_mode):
        return False
    return not info.st_mode & 0o022 or (above and bool(info.st_mode & stat.S_ISVTX))


def verify(folder: Path, expected: str | None, what: str, allow_unverified: bool = False) -> str:
    """Compare the folder's digest with the expected one; raise IntegrityError (saying why) unless they match.

    Without an expected digest the model is refused, unless `allow_unverified` (then the digest is only reported).
    """
    actual = model_digest(folder)
    if expected is None:
        if allow_unverified:
            return actual
        raise IntegrityError(
            f"{what} has no {TAG} tag, so its files cannot be verified before they are unpickled; refusing to load "
            f"it (its digest is {actual}; register it through mlspec, pass --sha256, or --allow-unverified)"
        )
    if actual != expected.strip().lower():
        hint = ""
        if (folder / "registered_model_meta").exists():
            # MLflow writes this file into a local store's model folder when someone downloads models:/NAME/VERSION
            # without a destination (mlflow.pyfunc.load_model does): the store was changed, not necessarily attacked.
            hint = (" The folder holds a 'registered_model_meta' file, which MLflow adds to a local artifact store"
                    " when models:/ URIs are downloaded without a destination folder.")
        raise IntegrityError(
            f"{what}: the sha256 digest of the model files ({actual}) does not match the registered digest "
            f"({expected}); the files changed after registration. Refusing to load them.{hint}"
        )
    return actual

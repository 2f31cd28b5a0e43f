"""What the entry point tells the user when the machine fails a command: a full disk, an unwritable workspace,
a corrupt state or tracking database, a closed output pipe. One mapping, for every command."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

# A process killed by SIGPIPE reports 128 + 13 to its shell; `mlspec plan | head -1` ends the same way as
# `cat big | head -1`, so a script with `set -o pipefail` sees what it sees from any other Unix tool.
EXIT_PIPE = 141

_workspace: Path | None = None  # the workspace folder the running command resolved, named in messages

_DISK = {errno.ENOSPC: "no space is left on the device", errno.EDQUOT: "the disk quota is used up"}
_ACCESS = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
           errno.EROFS: "the file system is read-only"}


def note_workspace(path: Path) -> None:
    """Remember the workspace folder a command works in, so a failure message can name it."""
    global _workspace
    _workspace = path


def closed_pipe() -> int:
    """The reader of our output went away (`| head`): stop writing, quietly.

    Python's own advice: point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (captured output): nothing to flush later
        pass
    return EXIT_PIPE


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what caused it, and what a database driver wrapped (SQLAlchemy keeps it in `.orig`)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        error = todo.pop(0)
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        orig = getattr(error, "orig", None)
        todo += [orig if isinstance(orig, BaseException) else None, error.__cause__, error.__context__]


def explain(exc: BaseException) -> str | None:
    """A message with the path and a way out for a machine-level failure; None for anything else (a bug)."""
    for error in _chain(exc):
        if isinstance(error, BrokenPipeError):
            return None
        if isinstance(error, OSError) and error.errno in _DISK:
            return _full(error.filename or _workspace, _DISK[error.errno])
        if isinstance(error, OSError) and error.errno in _ACCESS:
            return _denied(error.filename or _workspace, _ACCESS[error.errno])
        if isinstance(error, sqlite3.Error):
            return _database(error)
    from mlspec.backends.local.state import LockTimeout, StateError

    for error in _chain(exc):
        if isinstance(error, StateError | LockTimeout):
            return str(error)
    return None


def _full(path: object, why: str) -> str:
    where = Path(str(path)) if path else Path.cwd()
    free = ""
    try:
        probe = where if where.is_dir() else where.parent
        free = f" ({shutil.disk_usage(probe).free // 2**20} MiB free)"
    except OSError:
        pass
    return (f"cannot write {where}: {why}{free}. Free some space on that "
            "disk (or set storage.path in the Workspace to a folder on a bigger one) and run the command again.")


def _denied(path: object, why: str) -> str:
    where = Path(str(path)) if path else Path.cwd()
    folder = where if where.is_dir() else where.parent
    if _workspace is not None and not where.resolve().is_relative_to(_workspace.resolve()):
        return f"cannot use {where}: {why}. Check its owner and mode (`ls -ld {where}`) and run the command again."
    return (f"cannot write {where}: {why}. The workspace folder must be writable by this user: check its owner "
            f"and mode (`ls -ld {folder}`) and whether it is mounted read-only (`findmnt -T {folder}`), or set "
            "storage.path in the Workspace to a folder you own, and run the command again.")


def _database(error: sqlite3.Error) -> str:
    text = str(error)
    lowered = text.lower()
    workspace = _workspace or Path(".mlspec")
    if "disk is full" in lowered or ("disk i/o error" in lowered and _no_space(workspace)):
        return _full(workspace, "no space is left on the device")
    if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        return _denied(workspace, f"the database cannot be written ({text})")
    if "locked" in lowered or "busy" in lowered:
        return (f"a database in {workspace} is locked by another process ({text}); wait for the other mlspec "
                "command (or `mlflow ui`) to finish and run the command again.")
    broken = [path for path in (workspace / "state.db", workspace / "mlflow.db") if _unreadable(path)]
    if not broken:
        return f"a database in {workspace} cannot be used: {text}. Run the command again; if it persists, see " \
               f"`mlspec status` and the files in {workspace}."
    return "\nmlspec: ".join(_way_out(path, text) for path in broken)


def _way_out(path: Path, text: str) -> str:
    if path.name == "state.db":
        return (f"the state file {path} is not a readable mlspec state ({text}). Nothing was changed. Restore "
                f"{path.name}.bak from the same folder if it exists, or move the file away to start over "
                "(the next `mlspec up` then creates everything again).")
    return (f"the MLflow tracking database {path} is not a readable SQLite database ({text}). Nothing was changed. "
            f"Restore it from a backup, or move it away (`mv {path} {path}.broken`) to start a new, empty tracking "
            "store: runs and registered models recorded in it are then no longer listed, and the next `mlspec up` "
            "retrains the jobs whose models it cannot find.")


def _unreadable(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            db.execute("PRAGMA schema_version").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError as error:
        return "not a database" in str(error) or "malformed" in str(error) or "corrupt" in str(error)
    return False


def _no_space(path: Path) -> bool:
    try:
        return shutil.disk_usage(path).free < 2**20
    except OSError:
        return False

"""Waking the supervisor between its ticks: whoever declares processes pokes a FIFO it waits on, so a replica
declared by a scale-up starts at once rather than up to a tick later."""

from __future__ import annotations

import contextlib
import os
import select
import stat
from pathlib import Path

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.runtime.sockets import private_dir


def wake_path(paths: WorkspacePaths) -> Path:
    """Beside the workspace's other special files (its sockets), which copies and backups of it pass over."""
    return paths.root / "sockets" / "supervisor.wake"


class WakeUp:
    """The supervisor's end: a FIFO it holds open for reading and writing (so it never reads an end of file)."""

    def __init__(self, paths: WorkspacePaths) -> None:
        self.fd: int | None = None
        path = wake_path(paths)
        try:
            private_dir(path.parent)
            with contextlib.suppress(FileExistsError):
                os.mkfifo(path, 0o600)
            info = os.lstat(path)
            if stat.S_ISFIFO(info.st_mode) and info.st_uid == os.geteuid():
                self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        except OSError:
            pass  # no wake-ups: the supervisor still looks every tick

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds, less when poked; whether it was."""
        if self.fd is None:
            select.select([], [], [], timeout)
            return False
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self.fd, 4096)  # every poke so far is answered by the one tick that follows
        return bool(ready)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def wake(paths: WorkspacePaths) -> None:
    """Poke the workspace's supervisor, if one listens; never blocks, never fails."""
    try:
        fd = os.open(wake_path(paths), os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return  # no supervisor reads it (ENXIO), or there is none yet
    try:
        os.write(fd, b"!")
    except OSError:
        pass  # full: a wake-up is pending already
    finally:
        os.close(fd)

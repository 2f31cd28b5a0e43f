"""Ctrl-C during `mlspec up`: the first stops cleanly, a second exits at once."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a process stopped by Ctrl-C


@contextmanager
def two_stage_interrupt(hard_stop: Callable[[], str]) -> Iterator[None]:
    """The first SIGINT raises KeyboardInterrupt as usual, for a clean stop; a second one runs `hard_stop`
    (which kills what must not outlive us and says what the next run will do) and exits at once, without
    waiting for the clean stop to finish."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def second(signum: int, frame: FrameType | None) -> None:
        try:
            message = hard_stop()
        except Exception as exc:  # exiting matters more than the message
            message = f"stopped at once ({exc})"
        os.write(sys.stderr.fileno(), f"\nmlspec: {message}\n".encode())
        os._exit(EXIT_INTERRUPTED)

    def first(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, second)
        raise KeyboardInterrupt

    previous: Any = signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def stop_steps_now(workspace: Path) -> str:
    """For a second Ctrl-C: kill the processes of the steps in flight, and say what happened."""
    from mlspec.backends.local.apply import kill_step_processes
    from mlspec.render.progress import hard_stopped

    return hard_stopped(len(kill_step_processes(workspace)))

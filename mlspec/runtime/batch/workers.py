"""Scoring threads: predict releases the GIL (numpy, scikit-learn, torch), so threads score mini-batches in parallel.

Threads are daemons, and an attempt that overran its timeout is abandoned (its result discarded, a fresh thread
takes its place): a model stuck in a call can neither hold up the run nor keep the process from exiting.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any


class Attempt:
    """One try at one mini-batch."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self.work = work
        self.started: float | None = None  # monotonic time a thread picked it up
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.abandoned = False

    def run(self) -> None:
        self.started = time.monotonic()
        try:
            self.value = self.work()
        except Exception as error:  # the model's failure is this attempt's outcome, judged by the caller
            self.error = error
        self.done.set()

    def wait(self, timeout: float) -> bool:
        """Wait until done; False once it has run longer than `timeout` (time queued does not count)."""
        while not self.done.wait(self._left(timeout)):
            if self.started is not None and time.monotonic() - self.started >= timeout:
                return False
        return True

    def _left(self, timeout: float) -> float:
        if self.started is None:
            return 0.05  # still queued: look again soon, its clock starts when a thread takes it
        return max(0.001, self.started + timeout - time.monotonic())


class Workers:
    def __init__(self, count: int) -> None:
        self._queue: queue.SimpleQueue[Attempt | None] = queue.SimpleQueue()
        self._count = count
        for _ in range(count):
            self._spawn()

    def _spawn(self) -> None:
        threading.Thread(target=self._loop, name="batch-scorer", daemon=True).start()

    def _loop(self) -> None:
        while (attempt := self._queue.get()) is not None:
            attempt.run()
            if attempt.abandoned:
                return  # its replacement already took this thread's place

    def submit(self, work: Callable[[], Any]) -> Attempt:
        attempt = Attempt(work)
        self._queue.put(attempt)
        return attempt

    def abandon(self, attempt: Attempt) -> None:
        attempt.abandoned = True
        self._spawn()

    def close(self) -> None:
        for _ in range(self._count):
            self._queue.put(None)

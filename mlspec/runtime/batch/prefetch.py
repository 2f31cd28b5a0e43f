"""Reading ahead on a thread: pyarrow parses with the GIL released, so reading overlaps scoring and writing."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class _End:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class Prefetch(Generic[T]):
    """Iterates `items` on its own thread, at most `depth` items ahead; their exceptions surface in order."""

    def __init__(self, items: Iterator[T], depth: int) -> None:
        self._items = items
        self._queue: queue.Queue[T | _End] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="batch-reader", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        end = _End(None)
        try:
            for item in self._items:
                if not self._offer(item):
                    return
        except BaseException as error:  # raised again, in order, by the consuming thread
            end = _End(error)
        self._offer(end)

    def _offer(self, item: T | _End) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item

    def close(self) -> None:
        """Stop reading ahead (the thread ends at its next item) and let go of what was read."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5)

"""How many of a compute's nodes a pipeline's steps hold: taken all at once or not at all."""

from __future__ import annotations

import threading
from typing import Protocol


class Slots(Protocol):
    """A compute's free nodes, shared with whatever else runs on it: taken all at once or not at all."""

    def take(self, compute: str, count: int) -> bool: ...

    def give(self, compute: str, count: int) -> None: ...


class CountedSlots:
    """Slots of this pipeline alone: `capacity` nodes per compute."""

    def __init__(self, capacity: dict[str, int]) -> None:
        self.capacity, self.busy, self.lock = capacity, dict.fromkeys(capacity, 0), threading.Lock()

    def take(self, compute: str, count: int) -> bool:
        with self.lock:
            busy = self.busy.get(compute, 0)
            # More than the compute has (refused at validate) runs alone rather than never.
            if busy + count > max(self.capacity.get(compute, 1), count if busy == 0 else 0):
                return False
            self.busy[compute] = busy + count
            return True

    def give(self, compute: str, count: int) -> None:
        with self.lock:
            self.busy[compute] -= count

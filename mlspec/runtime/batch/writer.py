"""The writing thread: scored mini-batches, in input order, appended to their partial files in large CSV writes.

Mini-batches stay the unit of the journal, but not of I/O: consecutive ones are formatted as one CSV block by
pyarrow (C++, the GIL released) and appended in one write; every `COMMIT_EVERY_S` the partial files are flushed to
disk and the journal lines of everything written since go in one append. So what is journalled is always durably
written, and a kill costs at most the mini-batches written since the last commit (they are scored again).
"""

from __future__ import annotations

import errno
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlspec.runtime.batch.journal import Entry, Journal
from mlspec.runtime.batch.output import csv_block, csv_rows, groupable
from mlspec.runtime.batch.readers import MiniBatch

WRITE_ROWS = 1 << 16  # rows formatted and appended at once
WRITE_AFTER_S = 0.2  # longest a scored mini-batch waits to be written when the input trickles
COMMIT_EVERY_S = 0.5  # flush to disk and journal at most this often
_OPEN_FILES = 64  # per_file: partial files kept open between commits


@dataclass
class Scored:
    batch: MiniBatch
    predictions: dict[str, np.ndarray] | None  # None: the mini-batch failed with `error`
    error: str | None
    shape: tuple[tuple[str, str], ...] | None = None  # its columns' names and dtypes, once the writer looked


_CLOSE = object()


class PredictionWriter:
    """Writes `put` mini-batches in order on its own thread; `close` writes and commits the rest."""

    def __init__(self, journal: Journal, output_of: dict[int, str], sources: list[str], ends: dict[str, int],
                 queued_lists: int = 8) -> None:
        self.journal, self.output_of, self.sources = journal, output_of, sources
        self.ends = dict(ends)  # output name -> bytes written to its partial file
        self.error: BaseException | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(2, queued_lists))
        self._fds: dict[str, int] = {}
        self._dirty: set[str] = set()  # written to since the last commit
        self._uncommitted: list[Entry] = []
        self._current = ""  # the output written last
        self._shape: tuple[tuple[str, str], ...] | None = None  # what the pending mini-batches' predictions share
        self._last_commit = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="batch-writer", daemon=True)
        self._thread.start()

    def put(self, items: list[Scored]) -> None:
        """Queue consecutive scored mini-batches (handed over several at a time: each hand-over wakes a thread)."""
        while items:
            self._raise()
            try:
                self._queue.put(items, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Write and commit everything put so far, then stop; raises what made the thread fail."""
        if self._thread.is_alive():
            while self._thread.is_alive():
                try:
                    self._queue.put(_CLOSE, timeout=0.1)
                    break
                except queue.Full:
                    continue
            self._thread.join()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def _loop(self) -> None:
        pending: list[Scored] = []
        rows = 0
        since = 0.0
        try:
            while True:
                now = time.monotonic()
                deadlines = ([since + WRITE_AFTER_S] if pending else []) + (
                    [self._last_commit + COMMIT_EVERY_S] if self._uncommitted else [])
                try:
                    item = self._queue.get(timeout=max(0.0, min(deadlines) - now) if deadlines else None)
                except queue.Empty:
                    item = None
                if item is _CLOSE:
                    break
                for scored in item or ():
                    if pending and not self._joins(pending[-1], scored):
                        self._write(pending)
                        pending, rows = [], 0
                    if not pending:
                        since = time.monotonic()
                        self._shape = None
                    if scored.predictions is not None and self._shape is None:
                        self._shape = scored.shape or groupable(scored.predictions)
                    pending.append(scored)
                    rows += scored.batch.rows
                    if rows >= WRITE_ROWS:
                        self._write(pending)
                        pending, rows = [], 0
                if pending and (rows >= WRITE_ROWS or time.monotonic() - since >= WRITE_AFTER_S):
                    self._write(pending)
                    pending, rows = [], 0
                if self._uncommitted and time.monotonic() - self._last_commit >= COMMIT_EVERY_S:
                    self._commit()
            self._write(pending)
            self._commit()
        except BaseException as error:  # handed to the scoring thread, which stops the run with it
            self.error = error
            self._drain()

    def _drain(self) -> None:
        """After a failure: take what is still put so that no producer waits forever on a full queue."""
        while True:
            if self._queue.get() is _CLOSE:
                return

    def _joins(self, last: Scored, item: Scored) -> bool:
        if self.output_of[last.batch.file_index] != self.output_of[item.batch.file_index]:
            return False
        if item.predictions is None:
            return True  # a failed mini-batch writes nothing; it only needs its place in the order
        item.shape = groupable(item.predictions)
        return item.shape is not None and item.shape == self._shape

    def _write(self, items: list[Scored]) -> None:
        """Append these consecutive mini-batches of one output (in one write where it can) and queue their lines."""
        if not items:
            return
        name = self.output_of[items[0].batch.file_index]
        parts = [(self.sources[s.batch.file_index], s.batch.first_row, s.predictions) for s in items
                 if s.predictions is not None]
        header, data, offsets = b"", b"", []
        if len(parts) == 1:
            header, data = csv_rows(*parts[0])
            offsets = [len(data)]
        elif parts:
            block = csv_block(parts)
            if block is None:  # line breaks inside values: one mini-batch at a time
                for item in items:
                    self._write([item])
                return
            header, data, offsets = block
        running = self.ends.get(name, 0)
        base = running
        if parts:
            if not running:
                self._append(name, header)
                base = len(header)
            self._append(name, data)
        written = iter(offsets)
        for item in items:
            if item.predictions is not None:
                running = base + next(written)
            batch = item.batch
            self._uncommitted.append(Entry(batch.file_index, batch.batch_index, batch.first_row, batch.rows,
                                           running, item.error))
        self.ends[name] = running
        self._current = name

    def _append(self, name: str, data: Any) -> None:
        if name not in self._fds:
            if len(self._fds) >= _OPEN_FILES:
                self._commit()
            self._fds[name] = os.open(self.journal.partial(name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fds[name], view):]
        self._dirty.add(name)

    def _commit(self) -> None:
        """Flush the written predictions to disk, then journal them: a journal line never outlives its rows."""
        for name in self._dirty:
            try:
                os.fdatasync(self._fds[name])
            except OSError as error:
                if error.errno not in (errno.EINVAL, errno.ENOTSUP):
                    raise  # a file system that cannot flush (EINVAL) still has the writes in order
        self._dirty.clear()
        self.journal.record_many(self._uncommitted)
        self._uncommitted = []
        self._last_commit = time.monotonic()
        for name in [n for n in self._fds if n != self._current]:  # per_file: the files done with are closed
            os.close(self._fds.pop(name))

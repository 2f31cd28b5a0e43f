"""A batch run's whole life: load and verify the model, stream mini-batches through workers, write, journal, finish.

Three stages overlap, with bounded queues between them: a reading thread parses blocks and cuts them into
mini-batches, scoring threads predict them, a writing thread appends their predictions in input order. This
thread hands mini-batches from one stage to the next and owns the retries, timeouts and error accounting.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlspec.runtime.batch.contract import BatchResult, BatchRun, BatchRunError, FailedBatch
from mlspec.runtime.batch.journal import Entry, Journal
from mlspec.runtime.batch.output import finish, output_names
from mlspec.runtime.batch.predict import block_features, score, wanted_columns
from mlspec.runtime.batch.prefetch import Prefetch
from mlspec.runtime.batch.readers import InputFile, InputFormatError, MiniBatch, blocks, input_files
from mlspec.runtime.batch.workers import Attempt, Workers
from mlspec.runtime.batch.writer import PredictionWriter, Scored

LineCallback = Callable[[str], None]
PROGRESS_EVERY_S = 2.0
MAX_FAILURES_LISTED = 20
IN_FLIGHT_BATCHES = 64
IN_FLIGHT_ROWS = 1 << 16
HAND_OVER_ROWS = 1 << 14  # rows of finished mini-batches handed to the writer at once
WAKE_EVERY = 8  # mini-batches finished per wake-up of this thread, when it waits for the scoring threads


class Cancelled(Exception):
    pass


class ThresholdExceeded(BatchRunError):
    """More rows failed than the endpoint tolerates: the run starts afresh next time."""


@dataclass
class _InFlight:
    batch: MiniBatch
    attempt: Attempt
    tries: int = 1


def run_batch(run: BatchRun, on_line: LineCallback | None = None,
              stop: threading.Event | None = None) -> BatchResult:
    """Score the whole input; user errors end as a failed result with a message, never an exception."""
    from mlspec.runtime.serving.integrity import IntegrityError
    from mlspec.runtime.serving.loading import LoadError, load
    from mlspec.runtime.serving.registry import ModelNotFound

    started = time.monotonic()
    say = on_line or (lambda line: None)
    result = BatchResult(status="failed", endpoint=run.endpoint, model_uri=run.model_uri)
    try:
        files = input_files(Path(run.input))
        model = load(run.model_uri, run.tracking_uri, run.sha256, device=run.device)
        result.model_version, result.model_sha256 = model.source.version, model.digest
        say(f"{model.source.label} ({model.flavor}, sha256 {model.digest[:12]}) loaded in "
            f"{model.load_seconds:.1f}s; {len(files)} input file(s), {run.workers} worker(s)")
        _Run(run, files, model, result, say, stop or threading.Event()).execute()
    except (BatchRunError, InputFormatError, IntegrityError, ModelNotFound, LoadError) as error:
        result.error = str(error)
    except OSError as error:
        result.error = f"{error.strerror or error}: {error.filename}" if error.filename else str(error)
    except Cancelled:
        result.status, result.error = "cancelled", f"batch endpoint '{run.endpoint}' was stopped; run it again " \
                                                   "to continue where it stopped"
    result.duration_s = round(time.monotonic() - started, 3)
    return result


def fingerprint(run: BatchRun, files: list[InputFile], digest: str) -> str:
    """What the predictions depend on: a journal written for anything else is not resumed."""
    listing = [(f.source, f.path.stat().st_size, f.path.stat().st_mtime_ns) for f in files]
    settings = {k: v for k, v in run.model_dump(mode="json").items()
                if k in ("model_uri", "input", "output", "mode", "mini_batch_size")}
    text = json.dumps([settings, digest, listing], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class _Run:
    def __init__(self, run: BatchRun, files: list[InputFile], model: object, result: BatchResult,
                 say: LineCallback, stop: threading.Event) -> None:
        from mlspec.runtime.serving.loading import LoadedModel

        assert isinstance(model, LoadedModel)
        self.run, self.files, self.model, self.result, self.say, self.stop = run, files, model, result, say, stop
        self.output = Path(run.output)
        self.names = output_names(files, run.mode)
        self.output.mkdir(parents=True, exist_ok=True)
        self.journal = Journal.resume(self.output, fingerprint(run, files, model.digest))
        self.ends: dict[str, int] = {}  # output name -> bytes of its partial file the journal accounts for
        self.last_progress = time.monotonic()
        self.started = time.monotonic()
        self.resumed_rows = 0

    def execute(self) -> None:
        journal = self.journal
        try:
            journal.cut_partials(self.names)
            for entry in journal.entries:
                self._count(entry)
                self.ends[self.names[entry.file_index]] = entry.end
            self.result.resumed_batches = len(journal.entries)
            self.resumed_rows = self.result.rows_scored + self.result.rows_failed
            if journal.entries and not journal.complete:
                self.say(f"resuming: {len(journal.entries)} mini-batch(es) ({self.result.rows_scored} rows) were "
                         "already scored by an interrupted run")
            if not journal.complete:
                self._score(len(journal.entries))
                self._check_threshold()
                for name in set(self.names.values()):
                    journal.partial(name).touch()  # an input file with no rows still gets its (empty) file
                journal.mark_complete()
            summary = {"model_uri": self.run.model_uri, "model_version": self.result.model_version,
                       "rows_scored": self.result.rows_scored, "rows_failed": self.result.rows_failed}
            partials = {name: journal.partial(name) for name in set(self.names.values())}
            self.result.outputs = finish(self.output, partials, summary)
        except BaseException as error:
            journal.close()
            if isinstance(error, ThresholdExceeded):
                journal.remove()  # a failed run starts afresh next time: its failures may have been passing
            raise
        journal.remove()  # done: nothing left to resume
        self.result.status = "succeeded"
        self.result.scoring_s = round(time.monotonic() - self.started, 3)
        self._progress(final=True)

    def _score(self, skip: int) -> None:
        size = self.run.mini_batch_size
        # Mini-batches in flight: enough queued that a scoring thread never waits for this one to wake up
        # (each hand-over between threads costs a GIL switch), few enough rows to bound memory.
        window = max(2 * self.run.workers, min(IN_FLIGHT_BATCHES, -(-IN_FLIGHT_ROWS // size)))
        reader = Prefetch(self._read(skip), depth=2)
        workers = Workers(self.run.workers)
        writer = PredictionWriter(self.journal, self.names, [f.source for f in self.files], self.ends)
        self.scored: list[Scored] = []  # finished, in order, not yet handed to the writer
        self.scored_rows = 0
        pending: deque[_InFlight] = deque()
        try:
            for block in reader:
                for batch in block:
                    pending.append(_InFlight(batch, self._submit(workers, batch)))
                    while len(pending) >= window:
                        self._finish_head(workers, writer, pending)
            while pending:
                self._finish_head(workers, writer, pending)
            self._hand_over(writer)
        finally:
            reader.close()
            workers.close()
            writer.close()  # what was handed over is written and journalled: a stopped run resumes after it

    def _hand_over(self, writer: PredictionWriter) -> None:
        writer.put(self.scored)
        self.scored, self.scored_rows = [], 0

    def _read(self, skip: int) -> Iterator[list[MiniBatch]]:
        """On the reading thread: each block's mini-batches, with the model's input made once for the block."""
        size = self.run.mini_batch_size
        for block in blocks(self.files, size, wanted_columns(self.model)):
            count = block.batch_count(size)
            if skip >= count:
                skip -= count  # scored before the interruption: read past it
                continue
            batches = block.mini_batches(size, block_features(self.model, block.table))
            yield batches[skip:]
            skip = 0

    def _submit(self, workers: Workers, batch: MiniBatch) -> Attempt:
        model = self.model
        return workers.submit(lambda: score(model, batch.table, batch.features))

    def _finish_head(self, workers: Workers, writer: PredictionWriter, pending: deque[_InFlight]) -> None:
        """Wait for the oldest mini-batch (retrying it as allowed) and write it: output stays in input order."""
        item = pending[0]
        if not item.attempt.done.is_set():
            if self.scored:
                self._hand_over(writer)  # before waiting: the writer is never idle while this thread sleeps
            if len(pending) > WAKE_EVERY and item.tries == 1:
                # Caught up with the scoring threads: sleep until several are done rather than wake for each
                # (every wake-up takes the GIL from a scoring thread); the head's own timeout is checked below.
                pending[WAKE_EVERY].attempt.done.wait(0.05)
        elif self.scored_rows >= HAND_OVER_ROWS:
            self._hand_over(writer)
        while True:
            if self.stop.is_set():
                raise Cancelled()
            finished = item.attempt.wait(self.run.timeout)
            if finished and item.attempt.error is None:
                self._done(item.batch, item.attempt.value, None)
                break
            if not finished:
                workers.abandon(item.attempt)
                error = f"timed out after {self.run.timeout:g}s"
            else:
                error = f"{type(item.attempt.error).__name__}: {_first_line(item.attempt.error)}"
            if item.tries > self.run.max_retries:
                tries = f" (after {item.tries} attempts)" if item.tries > 1 else ""
                self._done(item.batch, None, error + tries)
                break
            self.say(f"{self._where(item.batch)}: attempt {item.tries} failed ({error}); retrying")
            item.attempt = self._submit(workers, item.batch)
            item.tries += 1
        pending.popleft()
        self._check_threshold()
        self._progress()

    def _done(self, batch: MiniBatch, predictions: dict[str, np.ndarray] | None, error: str | None) -> None:
        self.scored.append(Scored(batch, predictions, error))
        self.scored_rows += batch.rows
        self._count(Entry(batch.file_index, batch.batch_index, batch.first_row, batch.rows, 0, error))
        if error is not None:
            self.say(f"{self._where(batch)}: failed: {error}")

    def _count(self, entry: Entry) -> None:
        self.result.batches += 1
        if entry.error is None:
            self.result.rows_scored += entry.rows
            return
        self.result.rows_failed += entry.rows
        if len(self.result.failures) < MAX_FAILURES_LISTED:
            self.result.failures.append(FailedBatch(source=self.files[entry.file_index].source,
                                                    first_row=entry.first_row, rows=entry.rows, error=entry.error))

    def _check_threshold(self) -> None:
        threshold = self.run.error_threshold
        if threshold >= 0 and self.result.rows_failed > threshold:
            first = self.result.failures[0] if self.result.failures else None
            example = f"; first: {first.source} rows {first.first_row}-{first.first_row + first.rows - 1}: " \
                      f"{first.error}" if first else ""
            raise ThresholdExceeded(f"{self.result.rows_failed} row(s) failed, more than error_threshold "
                                f"{threshold}{example}")

    def _where(self, batch: MiniBatch) -> str:
        last = batch.first_row + batch.rows - 1
        return f"{self.files[batch.file_index].source} rows {batch.first_row}-{last}"

    def _progress(self, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last_progress < PROGRESS_EVERY_S:
            return
        self.last_progress = now
        elapsed = max(now - self.started, 1e-9)
        fresh = self.result.rows_scored + self.result.rows_failed - self.resumed_rows
        self.say(f"{'done: ' if final else ''}{self.result.rows_scored} rows scored, {self.result.rows_failed} "
                 f"failed, {fresh / elapsed:,.0f} rows/s")


def _first_line(error: BaseException | None) -> str:
    return str(error).strip().splitlines()[0] if error is not None and str(error).strip() else "no message"

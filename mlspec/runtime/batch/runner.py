"""A batch run's whole life: load and verify the model, stream mini-batches through workers, write, journal, finish."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mlspec.runtime.batch.contract import BatchResult, BatchRun, BatchRunError, FailedBatch
from mlspec.runtime.batch.journal import Entry, Journal
from mlspec.runtime.batch.output import csv_rows, finish, output_names
from mlspec.runtime.batch.predict import score, wanted_columns
from mlspec.runtime.batch.readers import InputFile, InputFormatError, MiniBatch, input_files, mini_batches
from mlspec.runtime.batch.workers import Attempt, Workers

LineCallback = Callable[[str], None]
PROGRESS_EVERY_S = 2.0
MAX_FAILURES_LISTED = 20


class Cancelled(Exception):
    pass


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
        self.ends: dict[str, int] = {}  # output name -> bytes written to its partial file
        self.fds: dict[str, int] = {}
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
                self._close_partials()
                for name in set(self.names.values()):
                    journal.partial(name).touch()  # an input file with no rows still gets its (empty) file
                journal.mark_complete()
            summary = {"model_uri": self.run.model_uri, "model_version": self.result.model_version,
                       "rows_scored": self.result.rows_scored, "rows_failed": self.result.rows_failed}
            partials = {name: journal.partial(name) for name in set(self.names.values())}
            self.result.outputs = finish(self.output, partials, summary)
        except BaseException:
            self._close_partials()
            journal.close()
            raise
        journal.remove()  # done: nothing left to resume
        self.result.status = "succeeded"
        self.result.scoring_s = round(time.monotonic() - self.started, 3)
        self._progress(final=True)

    def _score(self, skip: int) -> None:
        columns = wanted_columns(self.model)
        window = max(2, self.run.workers * 2)  # mini-batches in flight: bounds memory and keeps workers busy
        workers = Workers(self.run.workers)
        batches: Iterator[MiniBatch] = mini_batches(self.files, self.run.mini_batch_size, columns)
        pending: deque[_InFlight] = deque()
        try:
            for index, batch in enumerate(batches):
                if index < skip:
                    continue  # scored before the interruption: read past it
                pending.append(_InFlight(batch, self._submit(workers, batch)))
                while len(pending) >= window:
                    self._finish_head(workers, pending)
            while pending:
                self._finish_head(workers, pending)
        finally:
            workers.close()

    def _submit(self, workers: Workers, batch: MiniBatch) -> Attempt:
        model, table = self.model, batch.table
        source = self.files[batch.file_index].source
        # Formatting the CSV on the worker too: the main thread only reads input and appends bytes.
        return workers.submit(lambda: csv_rows(source, batch.first_row, score(model, table)))

    def _finish_head(self, workers: Workers, pending: deque[_InFlight]) -> None:
        """Wait for the oldest mini-batch (retrying it as allowed) and write it: output stays in input order."""
        item = pending[0]
        while True:
            if self.stop.is_set():
                raise Cancelled()
            finished = item.attempt.wait(self.run.timeout)
            if finished and item.attempt.error is None:
                self._write(item.batch, item.attempt.value, None)
                break
            if not finished:
                workers.abandon(item.attempt)
                error = f"timed out after {self.run.timeout:g}s"
            else:
                error = f"{type(item.attempt.error).__name__}: {_first_line(item.attempt.error)}"
            if item.tries > self.run.max_retries:
                tries = f" (after {item.tries} attempts)" if item.tries > 1 else ""
                self._write(item.batch, None, error + tries)
                break
            self.say(f"{self._where(item.batch)}: attempt {item.tries} failed ({error}); retrying")
            item.attempt = self._submit(workers, item.batch)
            item.tries += 1
        pending.popleft()
        self._check_threshold()
        self._progress()

    def _write(self, batch: MiniBatch, csv: tuple[bytes, bytes] | None, error: str | None) -> None:
        name = self.names[batch.file_index]
        end = self.ends.get(name, 0)
        if csv is not None:
            header, rows = csv
            data = rows if end else header + rows
            _write_all(self._fd(name), data)
            end += len(data)
            self.ends[name] = end
        entry = Entry(batch.file_index, batch.batch_index, batch.first_row, batch.rows, end, error)
        self.journal.record(entry)  # after the predictions: a kill in between only costs re-scoring this one
        self._count(entry)
        if error is not None:
            self.say(f"{self._where(batch)}: failed: {error}")

    def _fd(self, name: str) -> int:
        if name not in self.fds:
            for other in list(self.fds):  # per_file: files are written one after another, so one stays open
                os.close(self.fds.pop(other))
            self.fds[name] = os.open(self.journal.partial(name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return self.fds[name]

    def _close_partials(self) -> None:
        for name in list(self.fds):
            os.close(self.fds.pop(name))

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
            self.journal.remove()  # a failed run starts afresh next time: its failures may have been passing
            raise BatchRunError(f"{self.result.rows_failed} row(s) failed, more than error_threshold "
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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _first_line(error: BaseException | None) -> str:
    return str(error).strip().splitlines()[0] if error is not None and str(error).strip() else "no message"

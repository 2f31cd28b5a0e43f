"""A batch run's whole life: load and verify the model, stream mini-batches through workers, write, journal, finish.

Three stages overlap, with bounded queues between them: a reading thread parses blocks and cuts them into
mini-batches, scoring threads predict them, a writing thread appends their predictions in input order. This
thread hands mini-batches from one stage to the next and owns the retries, timeouts and error accounting.

A model whose rows are scored independently (scikit-learn, torch: what the server stacks) gets a block's
consecutive mini-batches in one call (groups.py): a cheap model's per-call overhead is then paid once
per group, not per mini-batch. Mini-batches stay the unit of everything else; when a group's call fails or runs
too long, its mini-batches are scored one by one, each with its own attempts and timeout.
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
from mlspec.runtime.batch.groups import Group, batches_per_call, in_groups
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
    rows: slice | None = None  # where its predictions are in its attempt's, when the attempt scores a group
    group: int = 1  # mini-batches its attempt scores


def run_batch(run: BatchRun, on_line: LineCallback | None = None,
              stop: threading.Event | None = None) -> BatchResult:
    """Score the whole input; user errors end as a failed result with a message, never an exception."""
    from mlspec.runtime.serving.integrity import IntegrityError
    from mlspec.runtime.serving.loading import LoadError, load
    from mlspec.runtime.serving.registry import ModelNotFound
    from mlspec.runtime.serving.script import ScriptLoadError, load_batch_script

    started = time.monotonic()
    say = on_line or (lambda line: None)
    result = BatchResult(status="failed", endpoint=run.endpoint, model_uri=run.model_uri)
    try:
        files = input_files(Path(run.input))
        if run.scoring_script is not None:
            model = load_batch_script(run.model_uri, run.tracking_uri, str(run.code), run.scoring_script,
                                      run.sha256)
        else:
            model = load(run.model_uri, run.tracking_uri, run.sha256, device=run.device)
        result.model_version, result.model_sha256 = model.source.version, model.digest
        say(f"{model.source.label} ({model.flavor}, sha256 {model.digest[:12]}) loaded in "
            f"{model.load_seconds:.1f}s; {len(files)} input file(s), {run.workers} worker(s)")
        _Run(run, files, model, result, say, stop or threading.Event()).execute()
    except (BatchRunError, InputFormatError, IntegrityError, ModelNotFound, LoadError, ScriptLoadError) as error:
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
                for group in block:
                    pending.extend(self._submit_group(workers, group))
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

    def _read(self, skip: int) -> Iterator[list[Group]]:
        """On the reading thread: each block's mini-batches in groups, the model's input made once for the block."""
        size = self.run.mini_batch_size
        per_group = batches_per_call(size, self.model.batchable)
        for block in blocks(self.files, size, wanted_columns(self.model)):
            count = block.batch_count(size)
            if skip >= count:
                skip -= count  # scored before the interruption: read past it
                continue
            features = block_features(self.model, block.table)
            yield in_groups(block, block.mini_batches(size, features)[skip:], features, per_group)
            skip = 0

    def _submit_group(self, workers: Workers, group: Group) -> list[_InFlight]:
        """One attempt for the group's mini-batches; each knows its rows of the attempt's predictions."""
        if len(group.batches) == 1:
            return [_InFlight(group.batches[0], self._submit(workers, group.batches[0]))]
        model, table, features = self.model, group.table, group.features
        attempt = workers.submit(lambda: score(model, table, features))
        items, start = [], 0
        for batch in group.batches:
            items.append(_InFlight(batch, attempt, rows=slice(start, start + batch.rows), group=len(group.batches)))
            start += batch.rows
        return items

    def _submit(self, workers: Workers, batch: MiniBatch) -> Attempt:
        model = self.model
        return workers.submit(lambda: score(model, batch.table, batch.features))

    def _ungroup(self, workers: Workers, pending: deque[_InFlight], error: str) -> None:
        """The head's group failed as a whole: score its mini-batches one by one (the failure counts for none)."""
        failed = pending[0].attempt
        members = [item for item in pending if item.attempt is failed]
        first, last = members[0].batch, members[-1].batch
        self.say(f"{self.files[first.file_index].source} rows {first.first_row}-{last.first_row + last.rows - 1}: "
                 f"scoring {len(members)} mini-batches in one call failed ({error}); scoring them one by one")
        for item in members:
            item.attempt, item.rows, item.group = self._submit(workers, item.batch), None, 1

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
            # A group's call may take as long as its mini-batches each may.
            timeout = self.run.timeout * item.group
            finished = item.attempt.wait(timeout)
            if finished and item.attempt.error is None:
                value = item.attempt.value
                self._done(item.batch, value if item.rows is None else {k: v[item.rows] for k, v in value.items()},
                           None)
                break
            if not finished:
                workers.abandon(item.attempt)
                error = f"timed out after {timeout:g}s"
            else:
                error = f"{type(item.attempt.error).__name__}: {_first_line(item.attempt.error)}"
            if item.rows is not None:
                self._ungroup(workers, pending, error)
                continue
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

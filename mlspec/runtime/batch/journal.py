"""The resume journal: one JSON line per mini-batch written, so a run killed at any point continues where it stopped.

Order of writes: a mini-batch's predictions are appended to its output's `.partial` file and flushed to disk, then
its journal line (lines are committed many at a time, in one write, every fraction of a second). A kill or power
loss between the two leaves predictions past the journalled end of the partial file, which `resume` cuts off; a
kill inside a journal write leaves a torn last line, which `resume` drops. Mini-batches are written strictly in
input order, so what the journal holds is always a prefix of the run, and the finished output is byte for byte what
an uninterrupted run writes.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGING = ".mlspec-batch"  # beside the predictions, in the output folder: partial files rename into place


@dataclass
class Entry:
    file_index: int
    batch_index: int
    first_row: int
    rows: int
    end: int  # byte length of its output's partial file once this mini-batch was written
    error: str | None = None  # set: the mini-batch failed after its retries


@dataclass
class Journal:
    folder: Path
    fingerprint: str
    entries: list[Entry] = field(default_factory=list)
    complete: bool = False
    _fd: int = -1

    @property
    def path(self) -> Path:
        return self.folder / "journal.jsonl"

    def partial(self, output: str) -> Path:
        return self.folder / f"{_flat(output)}.partial"

    @classmethod
    def resume(cls, output: Path, fingerprint: str) -> Journal:
        """The journal of an interrupted run of this same work, or a fresh one (any other run's is discarded)."""
        folder = output / STAGING
        journal = cls(folder, fingerprint)
        lines = _read_lines(journal.path)
        if lines and lines[0][1].get("fingerprint") == fingerprint:
            valid = lines[0][0]
            for end, record in lines[1:]:
                if "complete" in record:
                    journal.complete = True
                elif "file" in record:
                    journal.entries.append(Entry(record["file"], record["batch"], record["first_row"],
                                                 record["rows"], record["end"], record.get("error")))
                valid = end
            with journal.path.open("r+b") as handle:
                handle.truncate(valid)  # a torn last line goes
        else:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            journal.path.write_text(json.dumps({"fingerprint": fingerprint}) + "\n", encoding="utf-8")
        journal._fd = os.open(journal.path, os.O_WRONLY | os.O_APPEND)
        return journal

    def cut_partials(self, output_of: dict[int, str]) -> None:
        """Cut each partial file back to its journalled end: bytes written after the last journal line go."""
        ends: dict[str, int] = {}
        for entry in self.entries:
            ends[output_of[entry.file_index]] = entry.end
        for output in set(output_of.values()):
            path = self.partial(output)
            if not path.exists():
                if ends.get(output, 0) and not self.complete:
                    raise OSError(f"{path} is missing although the journal records predictions in it")
                continue
            with path.open("r+b") as handle:
                handle.truncate(ends.get(output, 0))

    def record(self, entry: Entry) -> None:
        self.record_many([entry])

    def record_many(self, entries: list[Entry]) -> None:
        """One line per mini-batch, all in one write: the caller has made their predictions durable first."""
        lines = []
        for entry in entries:
            line: dict[str, Any] = {"file": entry.file_index, "batch": entry.batch_index,
                                    "first_row": entry.first_row, "rows": entry.rows, "end": entry.end}
            if entry.error is not None:
                line["error"] = entry.error
            lines.append(json.dumps(line, separators=(",", ":")) + "\n")
        if lines:
            _write_all(self._fd, "".join(lines).encode())
            self.entries.extend(entries)

    def mark_complete(self) -> None:
        self._write({"complete": True})
        self.complete = True

    def _write(self, record: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())  # one write: one line

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _flat(output: str) -> str:
    return output.replace("/", "%2F")


def _read_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(byte offset after the line, parsed line) for each complete, valid line; stops at the first that is not."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    lines: list[tuple[int, dict[str, Any]]] = []
    offset = 0
    while (newline := data.find(b"\n", offset)) >= 0:
        try:
            record = json.loads(data[offset:newline])
        except ValueError:
            break
        if not isinstance(record, dict):
            break
        offset = newline + 1
        lines.append((offset, record))
    return lines

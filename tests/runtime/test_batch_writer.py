"""The batch writer: mini-batches written as large CSV blocks, byte for byte what writing them one by one gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mlspec.runtime.batch.journal import Journal
from mlspec.runtime.batch.output import csv_block, csv_rows
from mlspec.runtime.batch.readers import MiniBatch
from mlspec.runtime.batch.writer import PredictionWriter, Scored


def parts(sizes: list[int], sources: list[str], values: object = None) -> list[tuple[str, int, dict[str, np.ndarray]]]:
    out, first = [], {s: 0 for s in sources}
    for index, rows in enumerate(sizes):
        source = sources[index % len(sources)]
        labels = np.arange(rows) % 3 if values is None else np.array([values] * rows)
        out.append((source, first[source], {"prediction": labels, "score": np.linspace(0, 1, rows)}))
        first[source] += rows
    return out


@pytest.mark.parametrize("sources", [["a.csv"], ["a.csv", "sub/b.parquet"]])
def test_a_block_is_the_mini_batches_written_one_by_one(sources: list[str]) -> None:
    given = parts([5, 7, 1, 5], sources)
    block = csv_block(given)
    assert block is not None
    header, body, ends = block
    one_by_one = [csv_rows(*part) for part in given]
    assert header == one_by_one[0][0] == b'"source","row","prediction","score"\n'
    assert bytes(body) == b"".join(rows for _, rows in one_by_one)
    assert ends == list(np.cumsum([len(rows) for _, rows in one_by_one]))


def test_line_breaks_inside_values_are_left_to_one_by_one_writing() -> None:
    assert csv_block(parts([2, 2], ["a.csv"], values="two\nlines")) is None


def batch(file_index: int, index: int, rows: int, first_row: int) -> MiniBatch:
    return MiniBatch(file_index, index, first_row, pa.table({"x": np.zeros(rows)}))


def test_the_journal_records_each_mini_batch_with_the_exact_end_of_its_rows(tmp_path: Path) -> None:
    journal = Journal.resume(tmp_path, "fingerprint")
    names = {0: "predictions.csv", 1: "predictions.csv"}
    writer = PredictionWriter(journal, names, ["a.csv", "b.csv"], {})
    items = [Scored(batch(0, 0, 4, 0), {"prediction": np.arange(4)}, None),
             Scored(batch(0, 1, 4, 4), None, "ValueError: no"),
             Scored(batch(0, 2, 2, 8), {"prediction": np.arange(2)}, None),
             Scored(batch(1, 0, 3, 0), {"prediction": np.array([1.5, 2.5, 3.5])}, None),  # other dtype: a new block
             Scored(batch(1, 1, 3, 3), {"prediction": np.array(["x", 1], dtype=object)[[0, 1, 0]]}, None)]
    writer.put(items[:3])
    writer.put(items[3:])
    writer.close()
    data = journal.partial("predictions.csv").read_bytes()
    lines = data.splitlines(keepends=True)
    assert lines[0] == b'"source","row","prediction"\n'
    assert [line.split(b",")[:2] for line in lines[1:]] == (
        [[b'"a.csv"', str(i).encode()] for i in (0, 1, 2, 3, 8, 9)] + [[b'"b.csv"', str(i).encode()]
                                                                      for i in range(6)])
    ends = [e.end for e in journal.entries]
    header = len(lines[0])
    assert ends == [header + sum(map(len, lines[1:5])), header + sum(map(len, lines[1:5])),
                    header + sum(map(len, lines[1:7])), header + sum(map(len, lines[1:10])), len(data)]
    assert [e.error for e in journal.entries] == [None, "ValueError: no", None, None, None]
    resumed = Journal.resume(tmp_path, "fingerprint")  # what was journalled is on disk, in full
    assert [(e.file_index, e.batch_index, e.end) for e in resumed.entries] == [
        (e.file_index, e.batch_index, e.end) for e in journal.entries]
    journal.close()
    resumed.close()

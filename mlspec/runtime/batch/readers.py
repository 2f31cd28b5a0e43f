"""Streaming readers: CSV, Parquet and JSON Lines, a file or a folder, in blocks cut into mini-batches of N rows.

I/O granularity is not the mini-batch: pyarrow parses large blocks (with the GIL released), each block is cut to a
whole number of mini-batches (the rest carried into the next) and mini-batches are zero-copy slices of it. Memory
stays bounded whatever the input size: no reader holds more than a block and the rest carried over.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# Bytes pyarrow parses at a time, on the reading thread alone (parsing threads would compete with the scoring
# threads, for no gain measured); with 1 MiB blocks the memory held grew with the file.
_CSV_BLOCK = 1 << 18
_JSONL_BLOCK = 1 << 20  # bytes of JSON Lines parsed at once
_PARQUET_ROWS = 1 << 16  # rows decoded at once (or the mini-batch size, when larger)


class InputFormatError(Exception):
    """The input cannot be read as given: an unknown suffix, a missing column, a malformed file."""


@dataclass(frozen=True)
class InputFile:
    path: Path
    source: str  # the row identity's file part: the path relative to the input folder (or the file's name)
    format: str


@dataclass(frozen=True)
class MiniBatch:
    file_index: int
    batch_index: int  # within its file
    first_row: int  # index of its first row within its file
    table: pa.Table
    features: Any = None  # the model's input for these rows when it was made for the whole block (a view)

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)


@dataclass(frozen=True)
class Block:
    """Consecutive rows of one file: whole mini-batches, but for the file's last block whose last may be short."""

    file_index: int
    batch_index: int  # of its first mini-batch, within its file
    first_row: int
    table: pa.Table

    def batch_count(self, size: int) -> int:
        return -(-int(self.table.num_rows) // size)

    def mini_batches(self, size: int, features: Any = None) -> list[MiniBatch]:
        """Its mini-batches as slices (no copy) of its table, and of `features`, the block's model input if any."""
        return [MiniBatch(self.file_index, self.batch_index + index, self.first_row + start,
                          self.table.slice(start, size), None if features is None else features[start:start + size])
                for index, start in enumerate(range(0, int(self.table.num_rows), size))]


def input_files(root: Path) -> list[InputFile]:
    """The files to score, in sorted (deterministic) order; hidden files are skipped."""
    if root.is_file():
        return [InputFile(root, root.name, _format(root))]
    if not root.is_dir():
        raise InputFormatError(f"input {root} does not exist")
    found = sorted(p for p in root.rglob("*") if p.is_file() and not any(
        part.startswith((".", "_")) for part in p.relative_to(root).parts))
    if not found:
        raise InputFormatError(f"input folder {root} holds no files to score")
    return [InputFile(p, p.relative_to(root).as_posix(), _format(p)) for p in found]


def _format(path: Path) -> str:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(sorted(FORMATS))
        raise InputFormatError(f"{path.name}: cannot tell its format from the suffix '{path.suffix}'; batch "
                               f"endpoints read {known}")
    return kind


def mini_batches(files: list[InputFile], size: int, columns: dict[str, pa.DataType] | None) -> Iterator[MiniBatch]:
    """Every file's rows in mini-batches of `size` (a file's last one may be smaller); a batch never spans files.

    `columns`: the columns the model takes and their types; only those are read (None: every column, as inferred).
    """
    for block in blocks(files, size, columns):
        yield from block.mini_batches(size)


def blocks(files: list[InputFile], size: int, columns: dict[str, pa.DataType] | None) -> Iterator[Block]:
    """Every file's rows in blocks of whole mini-batches of `size`, as large as the reader parsed them."""
    for file_index, item in enumerate(files):
        first_row = 0
        for table in _whole_batches(_read(item, size, columns), size):
            yield Block(file_index, first_row // size, first_row, table)
            first_row += table.num_rows


def _read(item: InputFile, size: int, columns: dict[str, pa.DataType] | None) -> Iterator[pa.RecordBatch]:
    try:
        if item.format == "csv":
            yield from _csv(item.path, columns)
        elif item.format == "parquet":
            yield from _parquet(item.path, size, columns)
        else:
            yield from _jsonl(item.path, size, columns)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError) as error:
        raise InputFormatError(f"{item.source}: {str(error).splitlines()[0]}") from None


def _missing(item: Path, have: list[str], columns: dict[str, pa.DataType]) -> None:
    missing = [name for name in columns if name not in have]
    if missing:
        raise InputFormatError(f"{item.name} has no column {', '.join(repr(m) for m in missing)}; the model takes "
                               f"{', '.join(columns)} (the file has {', '.join(have) or 'no columns'})")


def _csv(path: Path, columns: dict[str, pa.DataType] | None) -> Iterator[pa.RecordBatch]:
    import pyarrow.csv as pacsv

    convert = pacsv.ConvertOptions()
    if columns is not None:
        with path.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), [])
        _missing(path, header, columns)
        # Only the model's columns, with their types fixed: pyarrow infers types from the first block, so a later
        # block holding 2.5 in a column that began with integers would otherwise fail the whole file.
        convert = pacsv.ConvertOptions(include_columns=list(columns), column_types=columns)
    read = pacsv.ReadOptions(block_size=_CSV_BLOCK, use_threads=False)
    reader = pacsv.open_csv(path, read_options=read, convert_options=convert)
    yield from reader


def _parquet(path: Path, size: int, columns: dict[str, pa.DataType] | None) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    # Without pre_buffer=False pyarrow buffers every selected column chunk of the file up front.
    handle = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    if columns is not None:
        _missing(path, handle.schema_arrow.names, columns)
    for batch in handle.iter_batches(batch_size=max(size, _PARQUET_ROWS),
                                     columns=list(columns) if columns is not None else None):
        yield batch if columns is None else _cast(batch, columns)


def _jsonl(path: Path, size: int, columns: dict[str, pa.DataType] | None) -> Iterator[pa.RecordBatch]:
    import pyarrow.json as pajson

    parse: Any = pajson.ParseOptions()
    if columns is not None:
        parse = pajson.ParseOptions(explicit_schema=pa.schema(columns.items()), unexpected_field_behavior="ignore")
    checked = columns is None
    with path.open("rb") as handle:
        # Whole lines, about a block at a time: pyarrow skips blank lines, so no line is looked at in Python.
        while data := handle.read(_JSONL_BLOCK):
            data += handle.readline()
            if not data.strip():
                continue
            options = pajson.ReadOptions(block_size=len(data) + 1, use_threads=False)
            table = pajson.read_json(io.BytesIO(data), read_options=options, parse_options=parse)
            if not checked and columns is not None:
                _present(path, data.lstrip().split(b"\n", 1)[0], columns)
                checked = True
            yield from table.to_batches()


def _present(path: Path, first_line: bytes, columns: dict[str, pa.DataType]) -> None:
    """With an explicit schema, pyarrow fills absent fields with nulls: name a column the file lacks instead."""
    import json

    try:
        record = json.loads(first_line)
    except ValueError:
        return  # pyarrow has already accepted the line; its own error would have been clearer
    if isinstance(record, dict):
        _missing(path, list(record), columns)


def _cast(batch: pa.RecordBatch, columns: dict[str, pa.DataType]) -> pa.RecordBatch:
    if all(batch.schema.field(name).type == kind for name, kind in columns.items()):
        return batch
    return pa.RecordBatch.from_arrays([batch.column(name).cast(kind) for name, kind in columns.items()],
                                      names=list(columns))


def _whole_batches(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Record batches of whatever sizes the reader chose, joined and cut into tables of whole mini-batches."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        pending.append(batch)
        count += batch.num_rows
        if count >= size:
            table = pa.Table.from_batches(pending)
            whole = count - count % size
            yield table.slice(0, whole)
            rest = table.slice(whole)
            pending, count = [b for b in rest.to_batches() if b.num_rows], rest.num_rows
    if count:
        yield pa.Table.from_batches(pending)

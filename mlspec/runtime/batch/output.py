"""Predictions as CSV: `source,row,prediction...` per input row, one file (append) or one per input file (per_file).

CSV whatever the input's format: every tool reads it, and `source` (the input file, relative to the input folder)
with `row` (0-based row of that file) joins each prediction back to its input row.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from mlspec.runtime.batch.readers import InputFile, InputFormatError

APPEND_FILE = "predictions.csv"
MANIFEST = "_manifest.json"  # what the last finished run wrote; read to remove per-file outputs gone stale


def output_names(files: list[InputFile], mode: str) -> dict[int, str]:
    """Input file index -> its prediction file's path relative to the output folder."""
    if mode == "append":
        return dict.fromkeys(range(len(files)), APPEND_FILE)
    names: dict[int, str] = {}
    seen: dict[str, str] = {}
    for index, item in enumerate(files):
        name = str(PurePosixPath(item.source).with_suffix(".csv"))
        if name in seen:
            raise InputFormatError(f"{seen[name]} and {item.source} would both write {name}; rename one, or use "
                                   "output mode append")
        seen[name] = item.source
        names[index] = name
    return names


def csv_rows(source: str, first_row: int, predictions: dict[str, np.ndarray]) -> tuple[bytes, bytes]:
    """(header line, rows) of one mini-batch's predictions; the header goes only at the top of a file."""
    rows = len(next(iter(predictions.values())))
    columns: dict[str, Any] = {
        # One dictionary entry instead of a string per row: the file name costs nothing per row.
        "source": pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)), pa.array([source])),
        "row": pa.array(np.arange(first_row, first_row + rows, dtype=np.int64)),
    }
    for name, values in predictions.items():
        columns[name if name not in ("source", "row") else f"prediction_{name}"] = _arrow(values)
    buffer = io.BytesIO()
    pacsv.write_csv(pa.table(columns), buffer, pacsv.WriteOptions(include_header=False))
    header = ",".join('"' + name.replace('"', '""') + '"' for name in columns) + "\n"
    return header.encode(), buffer.getvalue()


def groupable(predictions: dict[str, np.ndarray]) -> tuple[tuple[str, str], ...] | None:
    """What mini-batches written as one CSV block must share (column names, dtypes), or None: write it alone.

    Equal dtypes make a block's text exactly the text of its mini-batches written one by one; object arrays are
    converted value by value, so they are never joined.
    """
    if any(values.dtype.kind == "O" for values in predictions.values()):
        return None
    return tuple((name, values.dtype.str) for name, values in predictions.items())


def csv_block(parts: list[tuple[str, int, dict[str, np.ndarray]]]) -> tuple[bytes, pa.Buffer, list[int]] | None:
    """(header, rows, end of each part in rows) for consecutive mini-batches `(source, first_row, predictions)`.

    One table and one `write_csv` (C++, the GIL released) for them all; each part's end is found from the line
    ends. None when a value holds a line break (the line ends would not be row ends): write those parts alone.
    """
    counts = np.array([len(next(iter(p.values()))) for _, _, p in parts], dtype=np.int64)
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    sources = list(dict.fromkeys(source for source, _, _ in parts))
    codes = np.array([sources.index(source) for source, _, _ in parts], dtype=np.int32)
    first_rows = np.array([first for _, first, _ in parts], dtype=np.int64)
    columns: dict[str, Any] = {
        "source": pa.DictionaryArray.from_arrays(pa.array(np.repeat(codes, counts)), pa.array(sources)),
        "row": pa.array(np.arange(total, dtype=np.int64) + np.repeat(first_rows - starts, counts)),
    }
    for name in parts[0][2]:
        values = np.concatenate([p[name] for _, _, p in parts]) if len(parts) > 1 else parts[0][2][name]
        columns[name if name not in ("source", "row") else f"prediction_{name}"] = _arrow(values)
    sink = pa.BufferOutputStream()
    # The writer's own batches are 1024 rows by default: one batch for the block costs a fifth less.
    pacsv.write_csv(pa.table(columns), sink, pacsv.WriteOptions(include_header=False, batch_size=max(total, 1024)))
    body = sink.getvalue()
    line_ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == ord("\n"))
    if len(line_ends) != total:
        return None
    header = ",".join('"' + name.replace('"', '""') + '"' for name in columns) + "\n"
    return header.encode(), body, (line_ends[np.cumsum(counts) - 1] + 1).tolist()


def _arrow(values: np.ndarray) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([str(v) for v in values])  # labels of mixed or unusual types: their text


def finish(output: Path, partials: dict[str, Path], summary: dict[str, Any]) -> list[str]:
    """Move every partial file into place (each rename is atomic), then the manifest; remove stale outputs."""
    written: list[str] = []
    for name, partial in sorted(partials.items()):
        target = output / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if partial.exists():
            os.replace(partial, target)
        elif not target.exists():  # an earlier, interrupted finish already moved it: it must be there
            raise OSError(f"{partial} is missing and {target} was never written")
        written.append(str(target))
    previous = _manifest(output)
    for stale in set(previous.get("outputs", [])) - set(written):
        if Path(stale).parent.resolve().is_relative_to(output.resolve()):
            Path(stale).unlink(missing_ok=True)
    temporary = output / f".{MANIFEST}.tmp"
    temporary.write_text(json.dumps({**summary, "outputs": written}, indent=2), encoding="utf-8")
    os.replace(temporary, output / MANIFEST)
    return written


def _manifest(output: Path) -> dict[str, Any]:
    try:
        value = json.loads((output / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}

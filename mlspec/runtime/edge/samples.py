"""Rows to check an exported model on: a file given by the user, else the model's training data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlspec.runtime.edge.errors import PackageError

MAX_ROWS = 200  # enough to cover every class of a small data set, few enough to check in a blink
LABEL_NAMES = frozenset({"label", "labels", "target", "y", "class", "species", "digit", "outcome"})


@dataclass(frozen=True)
class Sample:
    """Rows in the model's column order, where they came from, and the column names when known."""

    rows: np.ndarray
    source: str
    columns: tuple[str, ...] | None


def read_sample(path: Path, names: Sequence[str] | None, width: int | None) -> Sample:
    """The rows of a CSV (with a header), Parquet or JSON Lines file, reduced to the model's inputs: its named
    columns, else every column but a label (a column named like one, else the last) when there is one too many."""
    import pandas as pd

    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
        elif path.suffix.lower() in (".jsonl", ".ndjson"):
            frame = pd.read_json(path, lines=True)
        else:
            frame = pd.read_csv(path)
    except (OSError, ValueError) as error:
        raise PackageError(f"cannot read sample rows from {path}: {error}") from None
    if names:
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise PackageError(f"{path} lacks the model's column(s) {', '.join(missing)}; pass --sample FILE with them")
        frame = frame[list(names)]
    else:
        frame = frame.select_dtypes("number")
        if width is None or frame.shape[1] == width + 1:
            labels = [c for c in frame.columns if str(c).lower() in LABEL_NAMES]
            frame = frame.drop(columns=labels[:1] or [frame.columns[-1]])
        if width is not None and frame.shape[1] != width:
            raise PackageError(f"{path} has {frame.shape[1]} numeric columns, the model takes {width}; "
                               "pass --sample FILE with the model's inputs")
    if frame.empty:
        raise PackageError(f"{path} holds no rows to check the export on")
    # Evenly spread over the file: training data is often sorted by class, and every class should be checked.
    picked = np.unique(np.linspace(0, len(frame) - 1, min(MAX_ROWS, len(frame))).astype(int))
    frame = frame.iloc[picked]
    try:
        rows = frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise PackageError(f"{path}: the model's columns are not all numbers; exports take numeric inputs") from None
    return Sample(rows, str(path), tuple(map(str, frame.columns)))


def example_sample(folder: Path) -> Sample | None:
    """The input example the model was logged with (MLflow's `serving_input_example.json`), when it has one."""
    from mlspec.runtime.serving.protocols import InputError, parse_invocations

    path = folder / "serving_input_example.json"
    if not path.is_file():
        return None
    try:
        table, _ = parse_invocations(path.read_bytes(), "application/json")
        rows = np.asarray(table.rows, dtype=np.float64)
    except (InputError, ValueError, TypeError):
        return None  # not numbers: the export could not take it either
    if rows.ndim != 2 or not len(rows):
        return None
    return Sample(rows, "the model's input example", tuple(table.columns) if table.columns else None)


def first_sample(paths: Sequence[Path], names: Sequence[str] | None, width: int | None,
                 example: Sample | None = None) -> Sample:
    """The first of `paths` that yields rows the model takes, else the model's input example; PackageError saying
    what each one lacked."""
    if not paths and example is not None:
        if names and example.columns and set(names) <= set(example.columns):
            order = [example.columns.index(name) for name in names]
            return Sample(example.rows[:, order], example.source, tuple(names))
        return example
    reasons = []
    for path in paths:
        try:
            return read_sample(path, names, width)
        except PackageError as error:
            reasons.append(str(error))
    if not paths:
        raise PackageError("no rows to check the export on: the model's training job reads no data file and the "
                           "model has no input example; pass --sample FILE (CSV with a header, Parquet or JSON Lines)")
    raise PackageError("no rows to check the export on: " + "; ".join(reasons))

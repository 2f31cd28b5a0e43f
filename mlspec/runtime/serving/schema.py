"""What a model takes (from its MLflow signature or the model itself), and parsed tables turned into exactly that."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlspec.runtime.serving.protocols import InputError, Table

NUMERIC_TYPES = frozenset({"double", "float", "long", "integer", "boolean"})
V2_OF_MLFLOW = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "boolean": "BOOL"}
_NUMERIC_KINDS = "biuf"


class NotNumeric(InputError):
    """A value is not a number where the numeric fast path needs one."""


@dataclass(frozen=True)
class InputSchema:
    names: tuple[str, ...] | None = None  # columns the model takes, in its order
    types: tuple[str, ...] | None = None  # their MLflow types
    width: int | None = None  # values per row, when known
    numeric: bool | None = None  # True: every input is a number; None: not known (no signature)
    dtype: Any = np.float64  # what the numeric path converts to
    shape: tuple[int, ...] | None = None  # a tensor signature's shape (-1: any); rows are then N-D
    tensors: bool = False  # rows may be N-D (a torch model without a signature)

    @classmethod
    def build(cls, signature_inputs: str | None, names: list[str] | None = None, width: int | None = None,
              dtype: Any = np.float64, tensors: bool = False) -> InputSchema:
        """From MLmodel's `signature.inputs` (a JSON string); `names`/`width` come from the model when it has none."""
        specs = json.loads(signature_inputs) if signature_inputs else []
        if specs and specs[0].get("type") == "tensor":
            tensor = specs[0].get("tensor-spec", {})
            shape = tuple(int(d) for d in tensor.get("shape", ()))
            kind = np.dtype(tensor.get("dtype", "float32"))
            return cls(width=shape[1] if len(shape) == 2 and shape[1] > 0 else None, shape=shape or None,
                       numeric=kind.kind in _NUMERIC_KINDS, dtype=kind if kind.kind in _NUMERIC_KINDS else dtype,
                       tensors=True)
        if specs:
            named = all("name" in s for s in specs)
            types = tuple(str(s.get("type")) for s in specs)
            names = [str(s["name"]) for s in specs] if named else None
            return cls(tuple(names) if names else None, types, len(specs), all(t in NUMERIC_TYPES for t in types),
                       dtype)
        return cls(tuple(names) if names else None, None, width if width is not None else len(names or ()) or None,
                   None, dtype, None, tensors)

    def describe(self) -> str:
        if self.names:
            return f"{len(self.names)} columns: " + ", ".join(self.names)
        return f"{self.width} values per row" if self.width else "rows of numbers"

    # --- the numeric fast path -----------------------------------------------------------------------------------

    def to_array(self, table: Table) -> np.ndarray:
        """The rows as one array of `dtype`, columns in the model's order; InputError names what does not fit."""
        sent_as_array = isinstance(table.rows, np.ndarray)
        array = table.rows if sent_as_array else _as_array(table.rows)
        if array.dtype.kind not in _NUMERIC_KINDS and not table.text and not sent_as_array:
            array = _as_array(table.rows, dtype=object)  # each value as sent, so the one that is no number is named
        if array.ndim == 1 and (self.width == 1 or (table.columns is not None and len(table.columns) == 1)):
            array = array.reshape(-1, 1)
        self._check_shape(array)
        labels: tuple[str, ...] | list[str] | None = table.columns
        if table.columns is not None:
            if array.shape[1] != len(table.columns):
                raise InputError(f"the request names {len(table.columns)} columns but its rows have "
                                 f"{array.shape[1]} values")
            order = self._order(table.columns)
            if order is not None:
                array, labels = array[:, order], self.names
        if self.width is not None and self.shape is None and array.shape[1] != self.width:
            raise InputError(f"each row must have {self.width} values ({self.describe()}); got {array.shape[1]}")
        if array.dtype.kind not in _NUMERIC_KINDS:
            array = _numbers(array, labels or self.names, table.text)
        return array.astype(self.dtype, copy=False)

    def _check_shape(self, array: np.ndarray) -> None:
        if array.ndim == 0 or array.shape[0] == 0:
            raise InputError("there are no rows to score")
        if self.shape is not None:
            expected = list(self.shape)
            if array.ndim != len(expected) or any(e >= 0 and e != a for e, a in zip(expected, array.shape,
                                                                                  strict=True)):
                raise InputError(f"the model takes tensors of shape {expected} (-1: any); got {list(array.shape)}")
        elif array.ndim == 1:
            raise InputError(f"expected a list of rows ({self.describe()}); got a flat list of {array.shape[0]} "
                             "values: wrap one row in a list, e.g. [[...]]")
        elif array.ndim > 2 and not self.tensors:
            raise InputError(f"expected rows of single values ({self.describe()}); got nested lists "
                             f"of shape {list(array.shape)}")

    def _order(self, columns: list[str]) -> list[int] | None:
        """Positions of the model's columns in the request's; None when they are already in order."""
        if not self.names or (len(columns) == len(self.names) and tuple(columns) == self.names):
            return None
        if len(set(columns)) != len(columns):
            raise InputError(f"the request names a column twice: {', '.join(_duplicates(columns))}", 400)
        missing = [name for name in self.names if name not in columns]
        if missing:
            raise InputError(f"missing column(s) {', '.join(repr(m) for m in missing)}; the model takes "
                             f"{self.describe()}")
        position = {name: index for index, name in enumerate(columns)}
        return [position[name] for name in self.names]  # columns the model does not take are ignored, as MLflow does

    # --- the general path ----------------------------------------------------------------------------------------

    def to_frame(self, table: Table, cast: bool) -> Any:
        """A pandas DataFrame in the model's column order; `cast` converts columns to the signature's types."""
        import pandas as pd

        if not isinstance(table.rows, np.ndarray):
            _as_array(table.rows)  # a ragged table is refused here (with dtype=object numpy would accept it)
        rows = table.rows if isinstance(table.rows, np.ndarray) else _as_array(table.rows, dtype=object)
        if rows.ndim == 1:
            rows = rows.reshape(-1, 1)
        if rows.ndim != 2 or rows.shape[0] == 0:
            raise InputError(f"expected a non-empty table of rows ({self.describe()}); got shape {list(rows.shape)}")
        columns = table.columns or (list(self.names) if self.names and len(self.names) == rows.shape[1] else None)
        if columns is not None and len(columns) != rows.shape[1]:
            raise InputError(f"the request names {len(columns)} columns but its rows have {rows.shape[1]} values")
        frame = pd.DataFrame(rows, columns=columns)
        if table.columns is not None:
            order = self._order(table.columns)
            if order is not None:
                frame = frame[list(self.names or ())]
        if table.text or cast:
            for index, column in enumerate(frame.columns):
                kind = self.types[index] if cast and self.types and index < len(self.types) else None
                frame[column] = _cast(frame[column], kind, str(column), table.text)
        return frame


def _cast(values: Any, kind: str | None, column: str, text: bool) -> Any:
    import pandas as pd

    if kind is None:  # CSV text without a signature: numbers where the whole column reads as numbers
        try:
            return pd.to_numeric(values)
        except (ValueError, TypeError):
            return values
    if kind in NUMERIC_TYPES:
        try:
            numbers = pd.to_numeric(values)
        except (ValueError, TypeError):
            raise InputError(f"column '{column}' must hold numbers ({kind})") from None
        return numbers.astype(bool) if kind == "boolean" else numbers
    return values.astype(str) if kind == "string" else values


def _as_array(rows: Any, dtype: Any = None) -> np.ndarray:
    try:
        return np.array(rows, dtype=dtype)
    except (ValueError, TypeError):
        lengths = [len(r) if isinstance(r, list | tuple) else None for r in rows] if isinstance(rows, list) else []
        first = next((i for i, n in enumerate(lengths) if n != lengths[0]), None)
        if first is not None:
            raise InputError(f"rows have different lengths: row 0 has {lengths[0]} values, row {first} has "
                             f"{lengths[first]}", 400) from None
        raise InputError("the rows are not a table of values", 400) from None


def _numbers(array: np.ndarray, labels: Any, text: bool) -> np.ndarray:
    """Text (CSV) read as numbers; anything else that is not a number is named by row and column."""
    if text:
        try:
            return array.astype(np.float64)
        except ValueError:
            pass
    flat = array.reshape(array.shape[0], -1)
    for row_index, row in enumerate(flat):
        for column_index, value in enumerate(row):
            if not _is_number(value, text):
                column = labels[column_index] if labels and column_index < len(labels) else column_index
                shown = "null" if value is None else repr(value.item() if isinstance(value, np.generic) else value)
                raise NotNumeric(f"row {row_index}, column {column!r}: {shown} is not a number")
    return array.astype(np.float64)


def _is_number(value: Any, text: bool) -> bool:
    if isinstance(value, bool | int | float | np.number | np.bool_):
        return True
    if text and isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def _duplicates(columns: list[str]) -> list[str]:
    seen: set[str] = set()
    return sorted({c for c in columns if c in seen or seen.add(c)})  # type: ignore[func-returns-value]

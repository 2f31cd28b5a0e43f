"""One mini-batch through the model: arrow columns to the model's input (the serving fast path), predictions out."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from mlspec.runtime.serving.loading import LoadedModel, PyfuncInput
from mlspec.runtime.serving.protocols import Table

_ARROW_OF_MLFLOW = {"double": pa.float64(), "float": pa.float32(), "long": pa.int64(), "integer": pa.int32(),
                    "boolean": pa.bool_(), "string": pa.string()}


_FRAMES = ("pyfunc", "script")  # flavors given a pandas DataFrame of the mini-batch's rows


class PredictionError(Exception):
    """The model answered, but not one prediction per row."""


def wanted_columns(model: LoadedModel) -> dict[str, pa.DataType] | None:
    """The columns to read and their types: the model's own, so other columns are never parsed; None: all of them."""
    schema = model.schema
    if not schema.names:
        return None
    if schema.types is None:  # names from the estimator itself (no signature): numbers, as the fast path needs
        return {name: pa.float64() for name in schema.names}
    kinds = [_ARROW_OF_MLFLOW.get(t) for t in schema.types]
    if any(k is None for k in kinds):
        return None
    if model.flavor != "pyfunc":
        # The numeric path converts every column to the model's dtype anyway; reading them as float64 keeps a
        # column that starts with integers and later holds decimals from failing part way through a file.
        kinds = [pa.float64() if t in ("double", "float", "long", "integer") else k
                 for t, k in zip(schema.types, kinds, strict=True)]
    return dict(zip(schema.names, kinds, strict=True))


def block_features(model: LoadedModel, table: pa.Table) -> np.ndarray | None:
    """A whole block's rows as the one numeric array `model_input` would stack per mini-batch, or None.

    Made once per block on the reading thread, so a mini-batch's input is a view of it; only where slicing it gives
    exactly what stacking the mini-batch alone gives (numbers without nulls, or floats: nulls are NaN either way).
    """
    if model.flavor in _FRAMES or not table.num_columns or not table.num_rows:
        return None
    for column in table.columns:
        kind = column.type
        if not (pa.types.is_floating(kind) or ((pa.types.is_integer(kind) or pa.types.is_boolean(kind))
                                                and column.null_count == 0)):
            return None
    return np.column_stack([column.to_numpy() for column in table.columns])


def model_input(model: LoadedModel, table: pa.Table, features: np.ndarray | None = None) -> Any:
    """What `model.predict` takes for these rows, through the model's own `prepare` (as the server does)."""
    if model.flavor in _FRAMES:
        # Arrow already typed the columns; the server's object rows would lose that, so the frame is built here.
        return PyfuncInput(table.to_pandas(), None)
    names = [str(n) for n in table.column_names]
    if features is not None:
        return model.prepare(Table(features, names), None)
    columns = [table.column(i).to_numpy() for i in range(table.num_columns)]
    if all(c.dtype.kind in "biuf" for c in columns):
        rows = np.column_stack(columns) if columns else np.empty((table.num_rows, 0))
    else:
        rows = np.column_stack([c.astype(object) for c in columns])
    return model.prepare(Table(rows, names), None)


def prediction_columns(output: Any, rows: int) -> dict[str, np.ndarray]:
    """The model's output as named columns of `rows` values: `prediction`, or `prediction_0..k` for vectors."""
    import pandas as pd

    if isinstance(output, pd.DataFrame):
        named = {str(c): output[c].to_numpy() for c in output.columns}
    elif isinstance(output, pd.Series):
        named = {"prediction": output.to_numpy()}
    elif isinstance(output, dict):
        named = {str(k): np.asarray(v) for k, v in output.items()}
    else:
        array = np.asarray(output)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim == 1:
            named = {"prediction": array}
        elif array.ndim == 2:
            named = {f"prediction_{i}": array[:, i] for i in range(array.shape[1])}
        else:
            raise PredictionError(f"the model returned an array of shape {list(array.shape)}; batch scoring "
                                  "writes one row of values per input row")
    for name, values in named.items():
        if values.ndim != 1 or len(values) != rows:
            raise PredictionError(f"the model returned {len(values)} values for '{name}' for {rows} rows")
    return named


def score(model: LoadedModel, table: pa.Table, features: np.ndarray | None = None) -> dict[str, np.ndarray]:
    return prediction_columns(model.predict(model_input(model, table, features)), table.num_rows)

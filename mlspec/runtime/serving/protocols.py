"""Request bodies to tables: MLflow's /invocations formats (JSON and CSV) and the Open Inference Protocol v2."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

if TYPE_CHECKING:
    from mlspec.runtime.serving.binary import Tail

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_JSON_TYPES = ("application/json", "")  # no content type: MLflow's scoring server assumes JSON too
_CSV_TYPES = ("text/csv", "application/csv")

# Open Inference Protocol datatypes and the numpy dtypes they become (BYTES: Python strings).
V2_DTYPES: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": object,
}


class InputError(Exception):
    """The request cannot be scored as sent; the message names the problem. 400: malformed; 422: well-formed
    but not what the model takes; 415: a content type we do not speak."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:  # raised in the decoding process: its status comes back with it
        return type(self), (str(self), self.status)


class MethodNotAllowed(InputError):
    """405: the path is served, with other methods; the answer's Allow header names them."""

    def __init__(self, path: str, method: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"{path} takes {' or '.join(allowed)}, not {method}", 405)
        self.allowed = allowed


@dataclass(slots=True)
class Table:
    """Rows as sent: a list of rows (lists) or an array, with column names when the request gave them."""

    rows: Any
    columns: list[str] | None = None
    text: bool = False  # values are text to be read as numbers (CSV)


def loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InputError(f"the body is not valid JSON: {error}", 400) from None


def media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def parse_invocations(body: bytes, content_type: str) -> tuple[Table, dict[str, Any] | None]:
    """An /invocations body: a table and the optional `params` for models that take them."""
    media = media_type(content_type)
    if media in _CSV_TYPES:
        return parse_csv(body), None
    if media not in _JSON_TYPES:
        raise InputError(f"content type '{media}' is not supported; send application/json or text/csv", 415)
    payload = loads(body)
    if not isinstance(payload, dict):
        raise InputError(f"expected a JSON object with one of {', '.join(FORMATS)}", 400)
    unknown = sorted(set(payload) - {*FORMATS, "params"})
    given = [key for key in FORMATS if key in payload]
    if unknown or len(given) != 1:
        found = ", ".join(unknown + given) or "none"
        raise InputError(f"expected exactly one of {', '.join(FORMATS)} (and optionally params); found {found}", 400)
    params = payload.get("params")
    if params is not None and not isinstance(params, dict):
        raise InputError("params must be a JSON object", 400)
    key = given[0]
    value = payload[key]
    if key == "dataframe_split":
        return _split(value), params
    if key == "dataframe_records":
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise InputError("dataframe_records must be a list of objects, one per row", 400)
        return _records(value), params
    return _tensor_like(key, value), params


def _split(value: Any) -> Table:
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise InputError('dataframe_split must be an object with "data" (a list of rows) and usually "columns"', 400)
    columns = value.get("columns")
    if columns is not None and (not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)):
        raise InputError("dataframe_split columns must be a list of strings", 400)
    return Table(value["data"], columns)


def _records(records: list[dict[str, Any]]) -> Table:
    if not records:
        return Table([], None)
    columns = list(records[0])
    # A record without one of the columns gets None there: the conversion then names the row and column.
    return Table([[record.get(c) for c in columns] for record in records], columns)


def _tensor_like(key: str, value: Any) -> Table:
    if isinstance(value, list):
        if value and all(isinstance(row, dict) for row in value):
            return _records(value)
        return Table(value)
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(first := next(iter(value.values())), list) and first and \
                isinstance(first[0], list):
            return Table(first)  # one named tensor: {"input": [[...], ...]}
        columns = [str(name) for name in value]
        cells = [v if isinstance(v, list) else [v] for v in value.values()]
        lengths = {len(c) for c in cells}
        if len(lengths) > 1:
            sizes = ", ".join(f"{n}: {len(c)}" for n, c in zip(columns, cells, strict=True))
            raise InputError(f"{key} columns have different lengths ({sizes})", 400)
        return Table([list(row) for row in zip(*cells, strict=True)], columns)
    raise InputError(f"{key} must be a list of rows or an object of columns", 400)


def parse_csv(body: bytes) -> Table:
    """CSV with a header row, as pandas.read_csv reads it for MLflow's scoring server."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"the CSV body is not UTF-8: {error}", 400) from None
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
    except csv.Error as error:
        raise InputError(f"the body is not valid CSV: {error}", 400) from None
    if not rows:
        raise InputError("the CSV body is empty; send a header row of column names, then rows", 400)
    header, data = rows[0], rows[1:]
    for number, row in enumerate(data, start=1):
        if len(row) != len(header):
            raise InputError(f"CSV row {number} has {len(row)} values; the header names {len(header)} columns", 400)
    return Table(data, header, text=True)


# Request parameters that steer the protocol itself (Triton's clients set them), never passed on to a model.
_PROTOCOL_PARAMETERS = ("binary_data_output", "sequence_id", "sequence_start", "sequence_end", "priority", "timeout")


def parse_v2(body: bytes, tail: Tail | None = None) -> tuple[Table, Any, dict[str, Any] | None]:
    """An Open Inference Protocol v2 infer body (its JSON part, with the binary `tail` of the binary tensor
    extension when there is one): a table, the request id and the parameters."""
    payload = loads(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list) or not payload["inputs"]:
        raise InputError('expected {"inputs": [{"name", "shape", "datatype", "data"}, ...]}', 400)
    tensors = [_v2_tensor(spec, index, tail) for index, spec in enumerate(payload["inputs"])]
    if tail is not None:
        tail.finish()
    parameters = payload.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InputError("parameters must be a JSON object", 400)
    if parameters:
        parameters = {k: v for k, v in parameters.items() if k not in _PROTOCOL_PARAMETERS} or None
    if len(tensors) == 1:
        name, array = tensors[0]
        # [N] is one column of N rows (the batch dimension comes first); [N, F] and beyond are rows as they are.
        return (Table(array.reshape(-1, 1), [name]) if array.ndim == 1 else Table(array)), payload.get("id"), \
            parameters
    columns = []
    for name, array in tensors:
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise InputError(f"input '{name}' has shape {list(array.shape)}; with several inputs, each is one "
                             "column of shape [N] or [N, 1]")
        columns.append((name, array))
    lengths = {len(array) for _, array in columns}
    if len(lengths) > 1:
        raise InputError("inputs have different numbers of rows: " + ", ".join(f"{n}: {len(a)}" for n, a in columns))
    kinds = {array.dtype for _, array in columns}
    rows = np.empty((lengths.pop(), len(columns)), dtype=kinds.pop() if len(kinds) == 1 else object)
    for index, (_, array) in enumerate(columns):
        rows[:, index] = array
    return Table(rows, [name for name, _ in columns]), payload.get("id"), parameters


def _v2_tensor(spec: Any, index: int, tail: Tail | None) -> tuple[str, np.ndarray]:
    if not isinstance(spec, dict):
        raise InputError(f"inputs[{index}] must be an object with name, shape, datatype and data", 400)
    name, shape, datatype = spec.get("name"), spec.get("shape"), spec.get("datatype")
    label = f"input '{name}'" if isinstance(name, str) else f"inputs[{index}]"
    parameters = spec.get("parameters")
    binary = isinstance(parameters, dict) and "binary_data_size" in parameters
    if not isinstance(name, str) or ("data" not in spec and not binary):
        raise InputError(f"{label} needs a name and data", 400)
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise InputError(f"{label}: shape must be a list of non-negative integers", 400)
    if not isinstance(datatype, str) or datatype not in V2_DTYPES:  # a list or object is no datatype (nor hashable)
        raise InputError(f"{label}: datatype must be one of {', '.join(V2_DTYPES)}; got {datatype!r}", 400)
    if binary:
        if tail is None:
            raise InputError(f"{label} has binary_data_size but the request has no Inference-Header-Content-Length "
                             "header", 400)
        data = tail.take(label, parameters["binary_data_size"], datatype, shape)  # type: ignore[index]
    else:
        try:
            data = np.array(spec["data"], dtype=object if datatype == "BYTES" else None)
        except ValueError:
            raise InputError(f"{label}: data is ragged (nested lists of different lengths)", 400) from None
        except (TypeError, OverflowError) as error:
            raise InputError(f"{label}: data is not an array of values: {error}", 400) from None
    if data.size != math.prod(shape):
        raise InputError(f"{label}: shape {shape} holds {math.prod(shape)} values but data has {data.size}")
    if datatype != "BYTES" and data.size and data.dtype.kind not in "biuf":
        raise InputError(f"{label} is {datatype} but its data holds values that are not numbers")
    _check_range(label, data, datatype)
    try:
        return name, data.reshape(shape).astype(V2_DTYPES[datatype], copy=False)
    except (ValueError, OverflowError) as error:
        raise InputError(f"{label}: data does not fit {datatype}: {error}") from None


def _check_range(label: str, data: np.ndarray, datatype: str) -> None:
    """Integers that do not fit the datatype are refused, not wrapped around (300 as UINT8 would score as 44)."""
    target = np.dtype(V2_DTYPES[datatype])
    if target.kind not in "iu" or not data.size or data.dtype.kind not in "iuf":
        return
    info = np.iinfo(target)
    low, high = data.min(), data.max()
    if low < info.min or high > info.max:
        bad = low if low < info.min else high
        raise InputError(f"{label}: value {bad} does not fit {datatype} ({info.min} to {info.max})", 400)


def v2_datatype(dtype: np.dtype[Any]) -> str:
    for name, candidate in V2_DTYPES.items():
        if candidate is not object and dtype == np.dtype(candidate):
            return name
    return "BYTES"


def v2_outputs(predictions: Any) -> list[dict[str, Any]]:
    """Predictions as v2 output tensors: a DataFrame's columns, or one tensor named `predict`."""
    if hasattr(predictions, "columns"):  # a DataFrame: one output per column
        return [_output(str(c), predictions[c].to_numpy()) for c in predictions.columns]
    return [_output("predict", np.asarray(predictions))]


def v2_output_metadata(predictions: Any) -> list[dict[str, Any]]:
    """What v2_outputs returns for such predictions, as v2 model metadata: names, datatypes, shapes (-1 rows)."""
    return [{"name": tensor["name"], "datatype": tensor["datatype"], "shape": [-1, *tensor["shape"][1:]]}
            for tensor in v2_outputs(predictions)]


def _output(name: str, array: np.ndarray) -> dict[str, Any]:
    return {"name": name, "datatype": v2_datatype(array.dtype), "shape": list(array.shape),
            "data": np.ascontiguousarray(array).reshape(-1)}

"""Serving packaged models: ONNX files through ONNX Runtime, scikit-learn skops files with their trusted types.

Both come from `mlspec package` (mlspec.runtime.edge), which records in the MLmodel file what a server needs:
for ONNX, the input and output names and the columns the model takes (`metadata.mlspec_onnx`); for skops, the
types the file may hold beyond skops' own trusted defaults (`flavors.skops.trusted`). Neither unpickles anything.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from mlspec.runtime.serving.protocols import Table
from mlspec.runtime.serving.registry import ModelSource
from mlspec.runtime.serving.schema import InputSchema

ONNX_METADATA = "mlspec_onnx"
# Threads ONNX Runtime gives one call. One, by default: a replica answers small requests, where a thread pool's
# wake-ups cost more than they save; replicas (and the server's workers) are how a deployment uses more cores.
THREADS_VARIABLE = "MLSPEC_ONNX_THREADS"
_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
           "tensor(int32)": np.int32}


class UntrustedTypes(Exception):
    """A skops file holds types outside its trusted list."""


def load(folder: Path, flavors: dict[str, Any], metadata: dict[str, Any], inputs: str | None, source: ModelSource,
         digest: str, outputs: list[dict[str, Any]]) -> Any:
    """The LoadedModel of an ONNX or skops model folder."""
    from mlspec.runtime.serving.loading import LoadError

    needed = "onnxruntime" if "onnx" in flavors else "skops"
    try:
        __import__(needed)
    except ImportError:
        # The deployment's environment decides what a replica has: say what to add to it.
        raise LoadError(f"{source.label} is a {'ONNX' if needed == 'onnxruntime' else 'skops'} model: add "
                        f"{needed} to the requirements of the environment that serves it") from None
    if "onnx" in flavors:
        return _onnx(folder, flavors["onnx"], metadata.get(ONNX_METADATA) or {}, inputs, source, digest, outputs)
    return _skops(folder, flavors["skops"], inputs, source, digest, outputs)


def onnx_session(path: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime session on the CPU for the file at `path`."""
    import onnxruntime as ort

    ort.disable_telemetry_events()  # it would try to write a device id into a read-only home
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or int(os.environ.get(THREADS_VARIABLE, "1"))
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initialisers belong to the export, not every start
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _onnx(folder: Path, flavor: dict[str, Any], info: dict[str, Any], inputs: str | None, source: ModelSource,
          digest: str, outputs: list[dict[str, Any]]) -> Any:
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument

    from mlspec.runtime.serving.loading import LoadedModel, LoadError, ModelInputError

    try:
        session = onnx_session(folder / str(flavor.get("data", "model.onnx")))
    except (Fail, InvalidArgument, OSError) as error:
        raise LoadError(f"{source.label}: ONNX Runtime cannot load the model: {error}") from None
    first = session.get_inputs()[0]
    input_name = str(info.get("input") or first.name)
    wanted = [str(info.get("predict") or session.get_outputs()[0].name)]
    dtype = _DTYPES.get(first.type, np.float32)
    if info.get("source_flavor") == "torch":
        schema = InputSchema.build(inputs, dtype=dtype, tensors=True)
        if schema.names:
            schema = InputSchema.build(inputs, dtype=dtype)
    else:
        schema = InputSchema.build(inputs, info.get("feature_names"), info.get("width"), dtype=dtype)
    if schema.numeric is None and schema.width:
        schema = dataclasses.replace(schema, numeric=True)  # an ONNX graph takes numbers only

    def prepare(table: Table, params: dict[str, Any] | None) -> Any:
        return schema.to_array(table)

    def predict(rows: np.ndarray) -> Any:
        try:
            return session.run(wanted, {input_name: rows})[0]
        except (InvalidArgument, Fail) as error:  # a shape or type the graph does not take: the input's fault
            raise ModelInputError(str(error).splitlines()[0]) from None

    return LoadedModel(source, "onnx", digest, schema, prepare, predict, True, outputs, folder)


def load_skops(path: Path, trusted: list[str]) -> Any:
    """The estimator in a skops file, refused (UntrustedTypes, listing them) when it holds a type that is neither
    trusted by skops itself nor in `trusted`."""
    import skops.io

    unknown = sorted(set(skops.io.get_untrusted_types(file=path)) - set(trusted))
    if unknown:
        raise UntrustedTypes(f"{path.name} holds types outside its trusted list: {', '.join(unknown)}")
    return skops.io.load(path, trusted=trusted or None)


def _skops(folder: Path, flavor: dict[str, Any], inputs: str | None, source: ModelSource, digest: str,
           outputs: list[dict[str, Any]]) -> Any:
    from mlspec.runtime.serving.loading import LoadError, sklearn_model

    trusted = [str(t) for t in flavor.get("trusted") or []]
    try:
        estimator = load_skops(folder / str(flavor.get("data", "model.skops")), trusted)
    except UntrustedTypes as error:
        raise LoadError(f"{source.label}: {error}; refusing to load it") from None
    except ImportError as error:
        raise LoadError(f"{source.label}: a type in the skops file cannot be imported here: {error}") from None
    return sklearn_model(estimator, "skops", folder, inputs, source, digest, outputs)

"""Loading a verified model: scikit-learn and torch straight from their MLflow flavors, anything else as a pyfunc."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlspec.runtime.formats import is_torchscript
from mlspec.runtime.serving.integrity import IntegrityError, sealed, verify
from mlspec.runtime.serving.protocols import Table
from mlspec.runtime.serving.registry import ModelSource, fetch, resolve
from mlspec.runtime.serving.schema import InputSchema, NotNumeric


class LoadError(Exception):
    """The model's files are there and verified, but this server cannot load them."""


class ModelInputError(ValueError):
    """The model raised on this input (a shape or value it cannot take): the client's problem, answered 422."""


@dataclass(frozen=True)
class PyfuncInput:
    frame: Any
    params: dict[str, Any] | None


@dataclass
class LoadedModel:
    """A model ready to score: `prepare` runs on the event loop, `predict` on the scoring thread."""

    source: ModelSource
    flavor: str  # sklearn | torch | pyfunc
    digest: str
    schema: InputSchema
    prepare: Callable[[Table, dict[str, Any] | None], Any]
    predict: Callable[[Any], Any]
    batchable: bool  # rows are scored independently, so concurrent requests may be stacked into one call
    outputs: list[dict[str, Any]]  # the signature's outputs, for v2 metadata
    folder: Path
    load_seconds: float = 0.0
    private_copy: bool = True  # `folder` is this process's own copy, removed once the model is in memory


def load(model_uri: str, tracking_uri: str | None, sha256: str | None = None, allow_unverified: bool = False,
         device: str = "auto") -> LoadedModel:
    """Resolve, copy, verify (before anything is unpickled), then load. Raises ModelNotFound or IntegrityError."""
    started = time.perf_counter()
    source, folder, digest = fetch_verified(model_uri, tracking_uri, sha256, allow_unverified)

    import yaml

    mlmodel = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8")) or {}
    flavors = mlmodel.get("flavors") or {}
    signature = mlmodel.get("signature") or {}
    outputs = _outputs(signature.get("outputs"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # version-mismatch chatter from MLflow's loaders belongs to registration
        if "sklearn" in flavors:
            model = _sklearn(folder, flavors["sklearn"], signature.get("inputs"), source, digest, outputs)
        elif "pytorch" in flavors:
            model = _torch(folder, flavors["pytorch"], signature.get("inputs"), source, digest, outputs, device)
        elif "onnx" in flavors or "skops" in flavors:
            from mlspec.runtime.serving import edge_formats

            model = edge_formats.load(folder, flavors, mlmodel.get("metadata") or {}, signature.get("inputs"), source,
                                      digest, outputs)
        elif "python_function" in flavors:
            model = _pyfunc(folder, signature.get("inputs"), source, digest, outputs)
        else:
            raise LoadError(f"{source.label} has no flavor this server loads ({', '.join(flavors) or 'none'})")
    if model.flavor in ("sklearn", "skops"):
        # Fitted on a DataFrame, scikit-learn warns on every array it is given: the columns were checked here.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
    model.load_seconds = time.perf_counter() - started
    model.private_copy = folder != Path(source.location)
    return model


def fetch_verified(model_uri: str, tracking_uri: str | None, sha256: str | None = None,
                   allow_unverified: bool = False) -> tuple[ModelSource, Path, str]:
    """The model's files in a private folder (removed at exit), verified against their digest: its source, the
    folder and the digest."""
    source = resolve(model_uri, tracking_uri)
    if sha256 and source.expected_sha256 and sha256.lower() != source.expected_sha256.lower():
        raise IntegrityError(f"--sha256 {sha256} differs from {source.label}'s registered digest "
                             f"{source.expected_sha256}; refusing to guess which is right")
    if source.version is None and sealed(Path(source.location)):  # a folder only root can change: used in place
        folder = Path(source.location)
        return source, folder, verify(folder, sha256 or source.expected_sha256, source.label, allow_unverified)
    workdir = Path(tempfile.mkdtemp(prefix="mlspec-serve-"))  # mode 0700: no other user can swap the files
    atexit.register(shutil.rmtree, workdir, True)
    folder = fetch(source, workdir, tracking_uri)
    return source, folder, verify(folder, sha256 or source.expected_sha256, source.label, allow_unverified)


def _outputs(spec: str | None) -> list[dict[str, Any]]:
    """The signature's outputs as v2 metadata: column outputs by MLflow type, tensor outputs by dtype and shape."""
    import json

    from mlspec.runtime.serving.protocols import v2_datatype
    from mlspec.runtime.serving.schema import V2_OF_MLFLOW

    described = []
    for item in json.loads(spec) if spec else []:
        if item.get("type") == "tensor":
            tensor = item.get("tensor-spec", {})
            described.append({"name": item.get("name", "predict"),
                              "datatype": v2_datatype(np.dtype(tensor.get("dtype", "object"))),
                              "shape": list(tensor.get("shape", [-1]))})
        else:
            described.append({"name": item.get("name", "predict"),
                              "datatype": V2_OF_MLFLOW.get(item.get("type", ""), "BYTES"), "shape": [-1]})
    return described or [{"name": "predict", "datatype": "BYTES", "shape": [-1]}]


def _sklearn(folder: Path, flavor: dict[str, Any], inputs: str | None, source: ModelSource, digest: str,
             outputs: list[dict[str, Any]]) -> LoadedModel:
    return sklearn_model(_unpickle_estimator(folder, flavor), "sklearn", folder, inputs, source, digest, outputs)


def sklearn_model(estimator: Any, flavor: str, folder: Path, inputs: str | None, source: ModelSource, digest: str,
                  outputs: list[dict[str, Any]]) -> LoadedModel:
    """A loaded scikit-learn estimator, ready to score (from a pickle, or from a skops file)."""
    names = getattr(estimator, "feature_names_in_", None)
    schema = InputSchema.build(inputs, list(map(str, names)) if names is not None else None,
                               getattr(estimator, "n_features_in_", None))
    def prepare(table: Table, params: dict[str, Any] | None) -> Any:
        if schema.numeric is False:
            return schema.to_frame(table, cast=True)
        try:
            return schema.to_array(table)
        except NotNumeric:
            if schema.numeric:
                raise
            return schema.to_frame(table, cast=False)  # no signature: a pipeline may take text columns

    return LoadedModel(source, flavor, digest, schema, prepare, estimator.predict, True, outputs, folder)


def _unpickle_estimator(folder: Path, flavor: dict[str, Any]) -> Any:
    """The estimator itself: no pyfunc or pandas on the way. A plain pickle or cloudpickle file (cloudpickle
    writes standard pickles that import what they need) is read as MLflow reads it, without importing MLflow,
    which would cost a replica about a second; code paths and other formats go through MLflow."""
    pickled = flavor.get("pickled_model")
    refused = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true").strip().lower() not in ("true", "1")
    plain = flavor.get("serialization_format", "pickle") in ("pickle", "cloudpickle") and not flavor.get("code")
    if refused or not plain or not isinstance(pickled, str) or not (folder / pickled).is_file():
        import mlflow.sklearn

        return mlflow.sklearn.load_model(str(folder))
    import pickle

    with (folder / pickled).open("rb") as file:
        return pickle.load(file)  # the folder's digest was verified before this


def _torch(folder: Path, flavor: dict[str, Any], inputs: str | None, source: ModelSource, digest: str,
           outputs: list[dict[str, Any]], device: str) -> LoadedModel:
    import torch

    target = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                          "cpu" if device == "auto" else device)
    path = folder / str(flavor.get("model_data", "data")) / "model.pth"
    if is_torchscript(path):
        net = torch.jit.load(str(path), map_location=target)  # TorchScript: no pickled Python classes
    else:
        import mlflow.pytorch

        net = mlflow.pytorch.load_model(str(folder), map_location=target)  # a pickled module, or a torch.export one
    with contextlib.suppress(NotImplementedError):  # an exported program keeps the mode it was exported in
        net.eval()
    schema = InputSchema.build(inputs, dtype=np.float32, tensors=True)
    if schema.names:  # a column signature: the columns become one float32 tensor
        schema = InputSchema.build(inputs, dtype=np.float32)

    def prepare(table: Table, params: dict[str, Any] | None) -> Any:
        return schema.to_array(table)

    def predict(rows: np.ndarray) -> np.ndarray:
        try:
            with torch.inference_mode():
                out = net(torch.from_numpy(rows).to(target))
        except torch.cuda.OutOfMemoryError:
            raise
        except RuntimeError as error:  # shape mismatches surface as RuntimeError: the input's fault
            raise ModelInputError(str(error).splitlines()[0]) from None
        if isinstance(out, tuple | list):
            out = out[0]
        return out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)

    return LoadedModel(source, "torch", digest, schema, prepare, predict, True, outputs, folder)


def _pyfunc(folder: Path, inputs: str | None, source: ModelSource, digest: str,
            outputs: list[dict[str, Any]]) -> LoadedModel:
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    model = mlflow.pyfunc.load_model(str(folder))
    schema = InputSchema.build(inputs)

    def prepare(table: Table, params: dict[str, Any] | None) -> Any:
        return PyfuncInput(schema.to_frame(table, cast=False), params)  # MLflow enforces the signature itself

    def predict(given: PyfuncInput) -> Any:
        try:
            return model.predict(given.frame, params=given.params)
        except MlflowException as error:
            if error.get_http_status_code() < 500:
                raise ModelInputError(error.message) from None
            raise

    return LoadedModel(source, "pyfunc", digest, schema, prepare, predict, False, outputs, folder)

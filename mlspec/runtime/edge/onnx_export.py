"""ONNX exports: scikit-learn through skl2onnx, torch through torch.onnx.export, each run back through ONNX Runtime."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlspec.runtime.edge.check import Outputs
from mlspec.runtime.edge.errors import PackageError
from mlspec.runtime.edge.original import Original
from mlspec.runtime.edge.samples import Sample

INPUT = "input"


@dataclass(frozen=True)
class OnnxModel:
    """An exported graph and the names a server reads it by."""

    proto: Any  # onnx.ModelProto
    input: str
    predict: str  # the output that is the model's prediction (label, value, or a network's output)
    proba: str | None  # a classifier's probabilities

    def metadata(self, original: Original) -> dict[str, Any]:
        """What a server needs beside the graph (MLmodel `metadata.mlspec_onnx`)."""
        return {"input": self.input, "predict": self.predict, "proba": self.proba, "source_flavor": original.flavor,
                "feature_names": original.names, "width": original.width}


def export(original: Original, sample: Sample) -> OnnxModel:
    """The original as an ONNX graph taking float32 rows of the sample's shape (any number of rows)."""
    try:
        import onnx  # noqa: F401  (both exporters need it; say so before either fails obscurely)
    except ImportError:
        raise PackageError("ONNX export needs the onnx package: pip install 'mlspec[package]'") from None
    if original.flavor == "torch":
        return _torch(original.model, sample.rows)
    return _sklearn(original.model, sample.rows.shape[1])


def outputs(model: OnnxModel, rows: np.ndarray) -> Outputs:
    """What ONNX Runtime answers for `rows` (cast to float32, as the server casts requests)."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [model.predict] + ([model.proba] if model.proba else [])
    try:
        answers = session.run(names, {model.input: rows.astype(np.float32)})
    except Exception as error:
        raise PackageError(f"ONNX Runtime cannot run the export on the sample rows: {error}") from None
    return Outputs(np.asarray(answers[0]), np.asarray(answers[1]) if model.proba else None)


def save(model: OnnxModel, path: Path) -> None:
    path.write_bytes(model.proto.SerializeToString())


def _sklearn(estimator: Any, width: int) -> OnnxModel:
    try:
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError:
        raise PackageError("ONNX export of scikit-learn models needs skl2onnx: pip install 'mlspec[package]'") \
            from None
    from sklearn.base import is_classifier

    classifier = bool(is_classifier(estimator))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # zipmap off: probabilities as one float tensor, not a list of {class: p} maps
            proto = to_onnx(estimator, initial_types=[(INPUT, FloatTensorType([None, width]))],
                            options={"zipmap": False} if classifier else None)
    except Exception as error:
        raise PackageError(f"skl2onnx cannot convert this {type(estimator).__name__}: {type(error).__name__}: "
                           f"{str(error).strip().splitlines()[0]}") from None
    names = [o.name for o in proto.graph.output]
    if classifier and len(names) >= 2:
        return OnnxModel(proto, INPUT, names[0], names[1])
    return OnnxModel(proto, INPUT, names[0], None)


def _torch(net: Any, rows: np.ndarray) -> OnnxModel:
    import onnx
    import torch

    example = torch.from_numpy(rows[:2].astype(np.float32))
    buffer = io.BytesIO()
    axes = {INPUT: {0: "batch"}, "output": {0: "batch"}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # The TorchScript-based exporter: it takes the ScriptModules mlspec registers, and needs no onnxscript.
            # The TorchScript-based exporter writes to a file object as well as to a path.
            torch.onnx.export(net, (example,), buffer,  # type: ignore[arg-type]
                              dynamo=False, input_names=[INPUT], output_names=["output"], dynamic_axes=axes)
    except Exception as error:
        raise PackageError(f"torch.onnx.export cannot export this network: {type(error).__name__}: "
                           f"{str(error).strip().splitlines()[0]}") from None
    return OnnxModel(onnx.load_from_string(buffer.getvalue()), INPUT, "output", None)

"""The registered model to package, fetched and verified as a server would, and what it answers on sample rows."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlspec.runtime.edge.check import Outputs
from mlspec.runtime.edge.errors import PackageError
from mlspec.runtime.serving.registry import ModelSource


@dataclass
class Original:
    """A verified registered model: its files, MLmodel, and the estimator or network itself."""

    source: ModelSource
    folder: Path
    digest: str
    mlmodel: dict[str, Any]
    flavor: str  # sklearn | torch
    model: Any
    names: list[str] | None  # the columns it takes, when known
    width: int | None  # values per row, when known

    @property
    def signature_inputs(self) -> str | None:
        return (self.mlmodel.get("signature") or {}).get("inputs")

    def shaped(self, rows: np.ndarray) -> np.ndarray:
        """Flat sample rows in the shape a tensor signature gives (8x8 images for a CNN), when their sizes agree."""
        import json

        specs = json.loads(self.signature_inputs) if self.signature_inputs else []
        if len(specs) != 1 or specs[0].get("type") != "tensor":
            return rows
        shape = [int(d) for d in specs[0].get("tensor-spec", {}).get("shape", [])][1:]
        if not shape or any(d < 0 for d in shape) or int(np.prod(shape)) != int(np.prod(rows.shape[1:])):
            return rows
        return rows.reshape(len(rows), *shape)

    def outputs(self, rows: np.ndarray) -> Outputs:
        """Its predictions (and a classifier's probabilities) for `rows`, as float64 numbers in its column order."""
        if self.flavor == "torch":
            import torch

            with torch.inference_mode():
                out = self.model(torch.from_numpy(rows.astype(np.float32)))
            if isinstance(out, tuple | list):
                out = out[0]
            return Outputs(out.detach().cpu().numpy())
        x = self._frame(rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proba = self.model.predict_proba(x) if _is_classifier(self.model) else None
            return Outputs(np.asarray(self.model.predict(x)), None if proba is None else np.asarray(proba))

    def _frame(self, rows: np.ndarray) -> Any:
        if getattr(self.model, "feature_names_in_", None) is None:
            return rows
        import pandas as pd

        return pd.DataFrame(rows, columns=list(self.model.feature_names_in_))


def fetch(model_uri: str, tracking_uri: str) -> Original:
    """The version's files, verified against their registered digest before anything is unpickled."""
    import yaml

    from mlspec.runtime.serving.integrity import IntegrityError
    from mlspec.runtime.serving.loading import fetch_verified
    from mlspec.runtime.serving.registry import ModelNotFound

    try:
        source, folder, digest = fetch_verified(model_uri, tracking_uri)
    except (ModelNotFound, IntegrityError) as error:
        raise PackageError(str(error)) from None
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8")) or {}
    flavors = mlmodel.get("flavors") or {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "sklearn" in flavors:
            import mlflow.sklearn

            estimator = mlflow.sklearn.load_model(str(folder))
            names = getattr(estimator, "feature_names_in_", None)
            return Original(source, folder, digest, mlmodel, "sklearn", estimator,
                            None if names is None else [str(n) for n in names],
                            getattr(estimator, "n_features_in_", None))
        if "pytorch" in flavors:
            return Original(source, folder, digest, mlmodel, "torch", _torch_net(folder, flavors["pytorch"]),
                            None, None)
    kinds = ", ".join(sorted(flavors)) or "none"
    raise PackageError(f"{source.label} is a model of flavor(s) {kinds}: only scikit-learn and torch models are "
                       "packaged")


def _torch_net(folder: Path, flavor: dict[str, Any]) -> Any:
    import torch

    from mlspec.runtime.formats import is_torchscript

    path = folder / str(flavor.get("model_data", "data")) / "model.pth"
    if is_torchscript(path):
        net = torch.jit.load(str(path), map_location="cpu")
    else:
        import mlflow.pytorch

        net = mlflow.pytorch.load_model(str(folder), map_location="cpu")
    return net.eval()


def _is_classifier(model: Any) -> bool:
    from sklearn.base import is_classifier

    return bool(is_classifier(model)) and hasattr(model, "predict_proba")

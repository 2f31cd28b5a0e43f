"""Models for the packaging tests: a store with registered versions, and a transformer no exporter knows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class Doubler(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Multiplies every value by two: a transformer of this test suite's own, which skl2onnx has no converter for
    and skops does not trust by default."""

    def fit(self, x: Any, y: Any = None) -> Doubler:
        return self

    def transform(self, x: Any) -> Any:
        return np.asarray(x, dtype=np.float64) * 2


@dataclass
class Store:
    root: Path
    tracking_uri: str


def register(store: Store, name: str, model: Any, folder: Path, **fields: Any) -> int:
    """Save a fitted model as a job would (joblib for scikit-learn, TorchScript for torch) and register it the
    way mlspec registers a Model with a path: a real MLflow version with its digest."""
    from mlspec.runtime.packaging import register_path

    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "predict"):
        import joblib

        path = folder / "model.joblib"
        joblib.dump(model, path)
        flavor = "sklearn"
    else:
        import torch

        path = folder / "model.pt"
        torch.jit.save(torch.jit.script(model), str(path))
        flavor = "torch"
    return register_path(store.tracking_uri, name, path, flavor=flavor,  # type: ignore[arg-type]
                         artifact_location=str(store.root / "artifacts"), **fields).version


def iris_frame() -> Any:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    return frame


def iris_net(seed: int = 0) -> Any:
    """A small MLP fitted for a few steps on iris: enough for its outputs to vary from row to row."""
    import torch

    torch.manual_seed(seed)
    frame = iris_frame()
    x = torch.tensor(frame.iloc[:, :4].to_numpy(), dtype=torch.float32)
    y = torch.tensor(frame["species"].to_numpy())
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    optimiser = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(60):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimiser.step()
    return net.eval()

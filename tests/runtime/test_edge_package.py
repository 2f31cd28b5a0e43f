"""Packaging registered models as ONNX and skops: every export is checked against the original on sample rows, and
refused, naming the rows, when it answers differently; skops files load only with their trusted types."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from edge_models import Doubler, Store, iris_frame, iris_net, register

from mlspec.runtime.edge.check import Tolerance
from mlspec.runtime.edge.errors import PackageError
from mlspec.runtime.edge.package import Packaged, package
from mlspec.runtime.edge.package import register as register_packaged

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")
pytest.importorskip("skops")
TOLERANCE = Tolerance()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("edge-store")
    return Store(root, f"sqlite:///{root / 'mlflow.db'}")


@pytest.fixture(scope="module")
def iris_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("edge-data") / "iris.csv"
    iris_frame().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def iris_pipeline(store: Store, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, int]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = iris_frame()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(frame.iloc[:, :4],
                                                                                   frame["species"])
    return model, register(store, "iris-clf", model, tmp_path_factory.mktemp("iris-clf"))


def staged(tmp_path: Path) -> Path:
    return tmp_path / "staging"


def loaded(store: Store, name: str, version: int) -> Any:
    """The registered version as the scoring server loads it (fetched, verified, then loaded by its format)."""
    from mlspec.runtime.serving.loading import load

    return load(f"models:/{name}/{version}", store.tracking_uri)


def predict(model: Any, rows: Any) -> Any:
    from mlspec.runtime.serving.protocols import Table

    return model.predict(model.prepare(Table(rows.to_numpy().tolist(), list(rows.columns)), None))


def test_onnx_export_of_an_iris_pipeline_is_checked_registered_and_served_alike(
        store: Store, iris_pipeline: tuple[Any, int], iris_csv: Path, tmp_path: Path) -> None:
    model, version = iris_pipeline
    packaged = package(f"models:/iris-clf/{version}", store.tracking_uri, "onnx", staged(tmp_path), [iris_csv],
                       TOLERANCE)
    assert packaged.checked.startswith("predictions and probabilities equal on 150 sample rows")
    assert (packaged.folder / "model.onnx").is_file()
    register_packaged(packaged, store.tracking_uri, "iris-clf", str(version), "onnx")
    served = loaded(store, "iris-clf", packaged.version or 0)
    assert served.flavor == "onnx" and served.digest == packaged.sha256
    rows = iris_frame().iloc[::7, :4]
    assert predict(served, rows).tolist() == model.predict(rows).tolist()
    # Columns sent in another order are put back in the model's, as for the original.
    assert predict(served, rows[rows.columns[::-1]]).tolist() == model.predict(rows).tolist()
    from mlflow import MlflowClient

    registered = MlflowClient(store.tracking_uri).get_model_version_by_alias("iris-clf", "onnx")
    assert int(registered.version) == packaged.version
    assert registered.tags["mlspec.flavor"] == "onnx" and registered.tags["mlspec.packaged_from"] == str(version)


def test_onnx_export_of_a_torch_network_is_checked_equal(store: Store, iris_csv: Path, tmp_path: Path) -> None:
    import torch

    net = iris_net()
    version = register(store, "iris-net", net, tmp_path / "net")
    packaged = package(f"models:/iris-net/{version}", store.tracking_uri, "onnx", staged(tmp_path), [iris_csv],
                       TOLERANCE)
    assert packaged.checked.startswith("predictions equal on 150 sample rows")
    register_packaged(packaged, store.tracking_uri, "iris-net", str(version), "onnx")
    served = loaded(store, "iris-net", packaged.version or 0)
    rows = iris_frame().iloc[::5, :4]
    with torch.inference_mode():
        expected = net(torch.tensor(rows.to_numpy(), dtype=torch.float32)).numpy()
    answer = predict(served, rows)
    assert answer.shape == expected.shape == (30, 3)
    np.testing.assert_allclose(answer, expected, rtol=1e-4, atol=1e-5)


def test_an_export_that_changes_predictions_is_refused_naming_the_rows(store: Store, tmp_path: Path) -> None:
    """A real case: ONNX runs scikit-learn's float64 arithmetic in float32, which keeps only 128-second steps of a
    Unix time in seconds. The scaled feature collapses, and the classifier's answers change."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    seconds = 1.7e9 + np.arange(40) * 7.0
    frame = pd.DataFrame({"t": seconds, "label": (np.arange(40) >= 20).astype(int)})
    model = make_pipeline(StandardScaler(), LogisticRegression(C=100)).fit(frame[["t"]], frame["label"])
    assert model.score(frame[["t"]], frame["label"]) == 1.0
    sample = tmp_path / "times.csv"
    frame.to_csv(sample, index=False)
    version = register(store, "by-time", model, tmp_path / "by-time")
    with pytest.raises(PackageError) as refused:
        package(f"models:/by-time/{version}", store.tracking_uri, "onnx", staged(tmp_path), [sample], TOLERANCE)
    message = str(refused.value)
    assert "the ONNX export changes the answers on" in message and "Refusing it" in message
    assert "row 20 (1700000140): prediction 1 → 0" in message  # the row, its input and both answers


def test_a_model_without_a_converter_is_refused_by_name(store: Store, iris_csv: Path, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    frame = iris_frame()
    model = make_pipeline(Doubler(), LogisticRegression(max_iter=500)).fit(frame.iloc[:, :4], frame["species"])
    version = register(store, "doubled", model, tmp_path / "doubled")
    with pytest.raises(PackageError, match=r"skl2onnx cannot convert this Pipeline: .*Doubler"):
        package(f"models:/doubled/{version}", store.tracking_uri, "onnx", staged(tmp_path), [iris_csv], TOLERANCE)


def test_skops_round_trip_is_identical_and_served(store: Store, iris_pipeline: tuple[Any, int], iris_csv: Path,
                                                  tmp_path: Path) -> None:
    model, version = iris_pipeline
    packaged = package(f"models:/iris-clf/{version}", store.tracking_uri, "skops", staged(tmp_path), [iris_csv],
                       TOLERANCE)
    assert packaged.checked == ("predictions and probabilities equal on 150 sample rows from "
                                f"{iris_csv} (identical answers)")
    assert packaged.trusted == [] and (packaged.folder / "model.skops").is_file()
    assert not list(packaged.folder.glob("*.pkl"))  # no pickle anywhere
    register_packaged(packaged, store.tracking_uri, "iris-clf", str(version), "skops")
    served = loaded(store, "iris-clf", packaged.version or 0)
    rows = iris_frame().iloc[::3, :4]
    assert served.flavor == "skops"
    assert predict(served, rows).tolist() == model.predict(rows).tolist()


def test_skops_refuses_untrusted_types_unless_named(store: Store, iris_csv: Path, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    frame = iris_frame()
    model = make_pipeline(Doubler(), LogisticRegression(max_iter=500)).fit(frame.iloc[:, :4], frame["species"])
    version = register(store, "doubled-skops", model, tmp_path / "doubled")
    uri = f"models:/doubled-skops/{version}"
    refusal = "types skops does not trust by default: edge_models.Doubler; if you trust them, name each with --trust"
    with pytest.raises(PackageError, match=re.escape(refusal)):
        package(uri, store.tracking_uri, "skops", tmp_path / "refused", [iris_csv], TOLERANCE)
    trusted = package(uri, store.tracking_uri, "skops", tmp_path / "trusted", [iris_csv], TOLERANCE,
                      trust=["edge_models.Doubler"])
    assert trusted.trusted == ["edge_models.Doubler"]
    served = _served_folder(trusted)
    assert served.flavor == "skops"

    # A file whose trusted list no longer names a type it holds is refused by the server, listing the type.
    import yaml

    from mlspec.runtime.serving.loading import LoadError

    mlmodel = trusted.folder / "MLmodel"
    document = yaml.safe_load(mlmodel.read_text())
    document["flavors"]["skops"]["trusted"] = []
    mlmodel.write_text(yaml.safe_dump(document))
    refusal = "holds types outside its trusted list: edge_models.Doubler; refusing"
    with pytest.raises(LoadError, match=re.escape(refusal)):
        _served_folder(trusted)


def _served_folder(packaged: Packaged) -> Any:
    from mlspec.runtime.serving.integrity import model_digest
    from mlspec.runtime.serving.loading import load

    return load(str(packaged.folder), None, sha256=model_digest(packaged.folder))


def test_sample_rows_that_lack_the_model_columns_are_named(store: Store, iris_pipeline: tuple[Any, int],
                                                           tmp_path: Path) -> None:
    _, version = iris_pipeline
    other = tmp_path / "other.csv"
    pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}).to_csv(other, index=False)
    with pytest.raises(PackageError, match=re.escape("lacks the model's column(s) sepal_length, sepal_width")):
        package(f"models:/iris-clf/{version}", store.tracking_uri, "onnx", staged(tmp_path), [other], TOLERANCE)


def test_without_data_the_model_input_example_is_the_sample(store: Store, tmp_path: Path) -> None:
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    from mlspec.runtime.packaging import register_path

    frame = iris_frame()
    features = frame.iloc[:, :4]
    model = LogisticRegression(max_iter=500).fit(features, frame["species"])
    folder = tmp_path / "logged"
    example = features.iloc[[0, 60, 120], ::-1]  # columns in another order than the model's
    mlflow.sklearn.save_model(model, str(folder), input_example=example, pip_requirements=["scikit-learn"])
    version = register_path(store.tracking_uri, "with-example", folder, flavor="sklearn",
                            artifact_location=str(store.root / "artifacts")).version
    packaged = package(f"models:/with-example/{version}", store.tracking_uri, "onnx", staged(tmp_path), [],
                       TOLERANCE)
    assert packaged.checked.startswith("predictions and probabilities equal on 3 sample rows from the model's "
                                       "input example")


def test_a_convolutional_network_takes_its_sample_in_its_tensor_signature_shape(store: Store, tmp_path: Path) -> None:
    import mlflow.pytorch
    import torch
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec
    from sklearn.datasets import load_digits

    from mlspec.runtime.packaging import register_path
    from mlspec.runtime.serving.protocols import Table

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(256, 10)).eval().requires_grad_(False)
    signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 1, 8, 8))]))
    folder = tmp_path / "cnn"
    mlflow.pytorch.save_model(torch.jit.script(net), str(folder), signature=signature, pip_requirements=["torch"],
                              serialization_format="pickle")
    version = register_path(store.tracking_uri, "digits-cnn", folder, flavor="torch",
                            artifact_location=str(store.root / "artifacts")).version
    digits = load_digits(as_frame=True).frame  # 64 pixel columns and the target: flat rows, as data files hold them
    sample = tmp_path / "digits.csv"
    digits.to_csv(sample, index=False)
    packaged = package(f"models:/digits-cnn/{version}", store.tracking_uri, "onnx", staged(tmp_path), [sample],
                       TOLERANCE)
    assert packaged.checked.startswith("predictions equal on 200 sample rows")
    register_packaged(packaged, store.tracking_uri, "digits-cnn", str(version), "onnx")
    served = loaded(store, "digits-cnn", packaged.version or 0)
    images = digits.iloc[:5, :64].to_numpy(dtype=np.float32).reshape(5, 1, 8, 8)
    answer = served.predict(served.prepare(Table(images.tolist()), None))
    with torch.inference_mode():
        np.testing.assert_allclose(answer, net(torch.from_numpy(images.copy())).numpy(), rtol=1e-4, atol=1e-4)

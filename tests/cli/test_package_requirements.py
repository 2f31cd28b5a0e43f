"""What `mlspec package --format image` installs: the server's packages and the model format's, no more."""

from __future__ import annotations

from pathlib import Path

import yaml

from mlspec.cli.package_image import image_requirements


def folder(tmp_path: Path, flavors: dict[str, object]) -> Path:
    (tmp_path / "MLmodel").write_text(yaml.safe_dump({"flavors": flavors}))
    return tmp_path


def names(requirements: list[str]) -> set[str]:
    return {r.split("=")[0].split(">")[0].split("<")[0] for r in requirements}


def test_an_onnx_image_gets_onnx_runtime_and_the_server_alone(tmp_path: Path) -> None:
    wanted = image_requirements(folder(tmp_path, {"onnx": {"data": "model.onnx"}}))
    assert names(wanted) == {"PyYAML", "numpy", "uvloop", "httptools", "orjson", "onnxruntime"}


def test_a_pickled_scikit_learn_model_gets_the_version_it_was_saved_with(tmp_path: Path) -> None:
    wanted = image_requirements(folder(tmp_path, {"python_function": {}, "sklearn": {"sklearn_version": "1.9.1"}}))
    assert "scikit-learn==1.9.1" in wanted and "cloudpickle" in wanted
    assert not any(r.startswith("mlflow") for r in wanted)


def test_a_skops_model_gets_skops_and_its_scikit_learn(tmp_path: Path) -> None:
    wanted = image_requirements(folder(tmp_path, {"skops": {"data": "model.skops", "sklearn_version": "1.9.1"}}))
    assert "scikit-learn==1.9.1" in wanted and "skops>=0.10" in wanted and "onnxruntime>=1.17" not in wanted


def test_a_pickled_torch_module_needs_mlflow_to_load(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "model.pth").write_bytes(b"not a TorchScript archive")
    wanted = image_requirements(folder(tmp_path, {"pytorch": {"model_data": "data", "pytorch_version": "2.13.0"}}))
    assert "torch==2.13.0" in wanted and "mlflow-skinny>=2.12,<4" in wanted

"""`mlspec package` on a workspace, then the scoring server over real HTTP: the ONNX and skops versions it registers
answer as the original version does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_models import Store, iris_frame, register
from test_serving_support import REPO, Server, start

pytestmark = pytest.mark.e2e
pytest.importorskip("onnxruntime")
pytest.importorskip("skops")
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Store, Any]:
    """The iris example's spec with its job's model registered (as `up` would) in the workspace's own store."""
    from sklearn.ensemble import RandomForestClassifier

    spec = tmp_path_factory.mktemp("iris-spec")
    shutil.copy(REPO / "examples" / "iris" / "mlspec.yaml", spec / "mlspec.yaml")
    shutil.copytree(REPO / "examples" / "iris" / "data", spec / "data")
    shutil.copytree(REPO / "examples" / "iris" / "src", spec / "src")
    root = spec / ".mlspec"
    root.mkdir(mode=0o700)
    store = Store(root, f"sqlite:///{root / 'mlflow.db'}")
    frame = iris_frame()
    model = RandomForestClassifier(n_estimators=15, random_state=0).fit(frame[COLUMNS], frame["species"])
    register(store, "iris-clf", model, tmp_path_factory.mktemp("model"), tags={"mlspec.job": "train"})
    return spec, store, model


def package(spec: Path, *args: str) -> dict[str, Any]:
    from mlspec.cli.main import main

    return {"code": main(["package", *args, "--spec", str(spec), "--json"])}


def run_cli(capsys: pytest.CaptureFixture[str], spec: Path, *args: str) -> dict[str, Any]:
    code = package(spec, *args)["code"]
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)  # type: ignore[no-any-return]


def serve(store: Store, version: int, log: Path) -> Server:
    server = start("mlspec.runtime.serving", ["--model-uri", f"models:/iris-clf/{version}", "--tracking-uri",
                                              store.tracking_uri], log)
    server.wait_ready()
    return server


def test_onnx_and_skops_versions_answer_as_the_original_over_http(
        workspace: tuple[Path, Store, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec, store, model = workspace
    onnx = run_cli(capsys, spec, "iris-clf", "--format", "onnx")
    # The check ran on the training job's data, found through the spec (job train reads data:iris).
    assert onnx["checked"] == (f"predictions and probabilities equal on 150 sample rows from "
                               f"{spec / 'data' / 'iris.csv'} (labels equal, numbers within 0.0001 + 0.0001×|value|)")
    assert (onnx["from"], onnx["version"], onnx["alias"]) == ("iris-clf:1", 2, "onnx")
    # Without a version, the latest one that is not itself a package is packaged: version 1 again. A forest's
    # trees are a type skops does not trust by default: refused until named.
    assert package(spec, "iris-clf", "--format", "skops")["code"] == 1
    assert "does not trust by default: sklearn.tree._tree.Tree" in capsys.readouterr().err
    skops = run_cli(capsys, spec, "iris-clf", "--format", "skops", "--trust", "sklearn.tree._tree.Tree")
    assert (skops["from"], skops["version"], skops["trusted"]) == ("iris-clf:1", 3, ["sklearn.tree._tree.Tree"])
    written = run_cli(capsys, spec, "iris-clf:1", "--format", "onnx", "-o", str(tmp_path / "out"))
    assert Path(written["path"], "model.onnx").is_file() and written["sha256"] == onnx["sha256"]

    rows = iris_frame()[COLUMNS].iloc[::4]
    body = json.dumps({"dataframe_split": {"columns": COLUMNS, "data": rows.to_numpy().tolist()}})
    v2 = json.dumps({"inputs": [{"name": "x", "shape": [len(rows), 4], "datatype": "FP64",
                                 "data": rows.to_numpy().ravel().tolist()}]})
    expected = model.predict(rows).tolist()
    servers = [serve(store, version, tmp_path / f"v{version}.log") for version in (1, 2, 3)]
    try:
        for server in servers:
            answer = httpx.post(f"{server.url}/invocations", content=body, timeout=10,
                                headers={"content-type": "application/json"})
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"predictions": expected}
            infer = httpx.post(f"{server.url}/v2/models/default/infer", content=v2, timeout=10)
            assert infer.status_code == 200, infer.text
            assert infer.json()["outputs"][0]["data"] == expected
            # A request the model cannot take is a 4xx naming the problem, never a 5xx.
            wrong = httpx.post(f"{server.url}/invocations", content='{"instances": [[1.0, 2.0]]}', timeout=10,
                               headers={"content-type": "application/json"})
            assert 400 <= wrong.status_code < 500, wrong.text
    finally:
        for server in servers:
            server.stop()
    assert "(onnx, sha256" in servers[1].output() and "(skops, sha256" in servers[2].output()


def test_a_model_the_registry_lacks_is_a_clear_failure(workspace: tuple[Path, Store, Any],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    spec, _, _ = workspace
    assert package(spec, "iris-nope", "--format", "onnx")["code"] == 1
    assert "model 'iris-nope' has no registered versions" in capsys.readouterr().err

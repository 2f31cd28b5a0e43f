"""The local engine end to end on examples/iris: train, register, serve; idempotent; retrain on change; down."""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mlspec.backends.local.processes import workspace_processes
from tests.local.conftest import mlspec, status

pytestmark = pytest.mark.e2e


def updated_at(spec: Path) -> dict[str, float]:
    db = sqlite3.connect(spec / ".mlspec" / "state.db")
    rows = dict(db.execute("SELECT id, updated FROM resources"))
    db.close()
    return rows


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_up_serves_is_idempotent_retrains_on_change_and_down_cleans_up(iris: Path) -> None:
    first = mlspec("up", str(iris), "--yes")
    assert "Plan: 8 to create" in first.stdout
    assert "registered iris-clf:1" in first.stdout

    invoked = mlspec("endpoint", "invoke", "iris", "--data", str(iris / "request.json"), str(iris))
    predictions = json.loads(invoked.stdout)["predictions"]
    assert predictions == [0, 2]  # a setosa and a virginica

    state = status(iris)
    assert state["in_sync"] and state["supervisor"]
    endpoint = state["resources"]["endpoint/iris"]["outputs"]
    status_code, _ = post(f"{endpoint['url']}/invocations", (iris / "request.json").read_bytes(),
                          {"Content-Type": "application/json"})
    assert status_code == 401  # a key is required by default

    again = mlspec("up", str(iris), "--yes")
    assert "No changes" in again.stdout
    before = updated_at(iris)

    script = iris / "src" / "train.py"
    script.write_text(script.read_text().replace("n_estimators=50", "n_estimators=60"))
    plan = mlspec("plan", str(iris), "--json")
    changed = {c["id"] for c in json.loads(plan.stdout)["changes"] if c["action"] != "noop"}
    assert changed == {"job/train", "job/train-forest", "model/iris-clf", "model/iris-forest", "endpoint/iris"}
    second = mlspec("up", str(iris), "--yes")
    # Both jobs retrain; the logistic model comes out byte for byte the same, so its version is reused.
    assert "registered iris-clf:1" in second.stdout and "registered iris-forest:2" in second.stdout
    after = updated_at(iris)
    for unchanged in ("compute/cpu", "environment/sklearn", "data/iris"):
        assert after[unchanged] == before[unchanged], f"{unchanged} was touched"
    deployments = status(iris)["resources"]["endpoint/iris"]["outputs"]["deployments"]
    assert deployments["blue"]["version"] == 1 and deployments["green"]["version"] == 2
    assert json.loads(mlspec("endpoint", "invoke", "iris", "--data", str(iris / "request.json"),
                             str(iris)).stdout)["predictions"] == [0, 2]
    assert "No changes" in mlspec("up", str(iris), "--yes").stdout
    _open_inference_paths_reach_the_deployment_serving_their_model(endpoint)

    workspace = str((iris / ".mlspec").resolve())
    assert workspace_processes(workspace)  # replicas and the gateway are running
    mlspec("down", str(iris), "--yes")
    assert workspace_processes(workspace) == {}
    models = json.loads(mlspec("models", str(iris), "--json").stdout)
    assert {m["name"]: len(m["versions"]) for m in models} == {"iris-clf": 1, "iris-forest": 2}  # kept


def _open_inference_paths_reach_the_deployment_serving_their_model(endpoint: dict[str, Any]) -> None:
    """Blue (iris-clf, 90% of the traffic) and green (iris-forest, 10%): a path that names a model goes to the
    deployment serving it, whatever the weights; the repository index lists both."""
    key = json.loads(Path(endpoint["keys_file"]).read_text())["primary"]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    v2 = json.dumps({"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                                 "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]}).encode()
    for path, model in (("/v2/models/iris-forest/infer", "iris-forest"),
                        ("/v2/models/iris-clf/versions/1/infer", "iris-clf")):
        for _ in range(20):
            status_code, body = post(endpoint["url"] + path, v2, headers)
            assert status_code == 200 and json.loads(body)["model_name"] == model, body
    status_code, body = post(endpoint["url"] + "/v2/repository/index", b"{}", headers)
    assert status_code == 200 and [(m["name"], m["version"], m["state"]) for m in json.loads(body)] == [
        ("iris-clf", "1", "READY"), ("iris-forest", "2", "READY")]


def test_a_failing_job_shows_its_log_and_stops_only_its_dependants(iris: Path) -> None:
    spec = iris / "mlspec.yaml"
    spec.write_text(spec.read_text().replace("--algo forest", "--algo nonsense"))
    result = mlspec("up", str(iris), "--yes", check=False)
    assert result.returncode == 1
    assert "job/train-forest" in result.stderr and "exited with code 2" in result.stderr
    assert "invalid choice: 'nonsense'" in result.stderr  # the job's own last lines
    assert "MLflow run" in result.stderr
    assert "registered iris-clf:1" in result.stdout  # the independent job still finished
    assert "skip endpoint/iris" in result.stdout

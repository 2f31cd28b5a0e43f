"""examples/iris-scoring on a real Docker engine: the job trains and registers in the workspace's MLflow, and the
deployment's replica runs the example's score.py (init() once, run() per request) behind its JSON Schema, so the
gateway answers the script's own reply and a request that breaks the schema gets a 422 naming its place."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from mlspec.backends.pulumi import compile_project
from mlspec.graph import load_graph
from mlspec.runtime.train import registered_versions
from tests.docker.engine import DockerEngine
from tests.docker.test_iris_docker_e2e import CONTAINER, PASSWORD, assert_runs_as_declared, post, report
from tests.pulumi.harness import run_program

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "iris-scoring"

pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.timeout(1800)]


def test_the_scoring_script_example_serves_through_its_schema_on_docker(
        docker_engine: DockerEngine, base_image: str, wheelhouse: Path, tmp_path: Path,
        pytestconfig: pytest.Config) -> None:
    client = docker_engine.client
    started = time.monotonic()
    spec, out = tmp_path / "iris-scoring", tmp_path / "stack"
    shutil.copytree(EXAMPLE, spec, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    compile_project(load_graph([spec]), out)
    config = {"mlspec:baseImage": base_image, "mlspec:wheelhouse": str(wheelhouse),
              "mlspec:publishAddress": "127.0.0.1"}
    captured = run_program(out, config, mocks=docker_engine)
    provisioned_s = time.monotonic() - started
    assert not docker_engine.errors, docker_engine.errors

    train = captured.get(CONTAINER, "train")
    assert train.outputs["exitCode"] == 0, train.outputs.get("containerLogs")
    assert registered_versions(train.outputs["containerLogs"]) == {"iris-clf": 1}

    replica = captured.get(CONTAINER, "iris-scored-blue-0")
    info = assert_runs_as_declared(client, replica)
    assert info["State"]["Health"]["Status"] == "healthy"
    command = replica.inputs["command"]
    assert command[command.index("--model-uri") + 1] == "models:/iris-clf/1"

    servers = [r for r in captured.of_type(CONTAINER) if not r.inputs.get("attach")]
    gateway = next(r for r in servers if {"label": "mlspec.role", "value": "gateway"} in r.inputs["labels"])
    port = gateway.inputs["ports"][0]
    url = f"http://{port['ip']}:{int(port['external'])}/invocations"
    headers = {"Content-Type": "application/json"}
    keys = [r.outputs["result"] for r in captured.of_type(PASSWORD) if r.name.endswith("-primary-key")]
    if keys:
        headers["Authorization"] = f"Bearer {keys[0]}"

    # The script's own reply: classes and probabilities, as run() builds it.
    status, body = post(url, (EXAMPLE / "request.json").read_bytes(), headers)
    assert status == 200, body
    answer: dict[str, Any] = json.loads(body)
    assert answer["predictions"] == [0, 2]  # a setosa and a virginica
    assert len(answer["probabilities"]) == 2 and all(abs(sum(p) - 1) < 1e-3 for p in answer["probabilities"])
    # The schema stops a bad request before run() sees it, naming the place in the body.
    status, body = post(url, json.dumps({"data": [[5.1, 3.5, "wide", 0.2]]}).encode(), headers)
    assert status == 422, body
    assert json.loads(body)["error"].startswith("$.data[0][2]: 'wide' is not of type 'number'")

    report(pytestconfig, [f"iris-scoring on Docker: provisioned in {provisioned_s:.0f} s"])

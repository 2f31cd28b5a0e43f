"""Environments from a conda file and from the user's Dockerfile, and a model registered from a path, on a real
Docker engine: the conda environment installs its pip section offline from the wheelhouse, a run-once container
registers the model file in the workspace's MLflow, and the endpoint serves that version from both environments
(the Dockerfile's image, with mlspec's runtime layered on, runs a replica); the endpoint answers predictions."""

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
from tests.docker.test_iris_docker_e2e import (
    CONTAINER,
    IMAGE,
    PASSWORD,
    assert_runs_as_declared,
    post,
    report,
    tracking_query,
)
from tests.pulumi.harness import run_program

ROOT = Path(__file__).resolve().parents[2]
REQUEST = ROOT / "examples" / "iris" / "request.json"

pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.timeout(1800)]

SPEC = """\
kind: Workspace
name: envs-e2e
---
kind: Environment
name: sk
conda_file: env/conda.yaml
---
kind: Environment
name: own
build: {context: own}
---
kind: Model
name: iris-file
path: model/iris.joblib
flavor: sklearn
---
kind: Endpoint
name: iris
type: online
auth: key
deployments:
  conda:
    model: iris-file@latest
    environment: sk
  own:
    model: iris-file@latest
    environment: own
traffic: {conda: 50, own: 50}
"""


def _requirements_of(package: str) -> set[str]:
    """`package` and everything it needs, as installed here (normalised names): what its image must get."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: set[str] = set()
    todo = [package]
    while todo:
        name = todo.pop()
        if canonicalize_name(name) in found:
            continue
        found.add(canonicalize_name(name))
        for text in requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def write_spec(root: Path, base_image: str, wheelhouse: Path) -> None:
    import joblib
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    for folder in ("env", "model", "own"):
        (root / folder).mkdir(parents=True)
    (root / "mlspec.yaml").write_text(SPEC)
    (root / "env" / "conda.yaml").write_text("name: sk\ndependencies:\n  - pip\n  - pip:\n      - scikit-learn\n")
    iris = pd.read_csv(ROOT / "examples" / "iris" / "data" / "iris.csv")
    model = LogisticRegression(max_iter=500).fit(iris.drop(columns="species"), iris["species"])
    joblib.dump(model, root / "model" / "iris.joblib")
    # The user's image brings what the model needs itself (mlspec's layer adds only its runtime), here from wheels
    # in its context, as a team without a package index would.
    (root / "own" / "wheels").mkdir()
    from packaging.utils import canonicalize_name

    needed = _requirements_of("scikit-learn")
    for wheel in sorted(wheelhouse.glob("*.whl")):
        if canonicalize_name(wheel.name.split("-", 1)[0]) in needed:
            shutil.copy(wheel, root / "own" / "wheels" / wheel.name)
    (root / "own" / "Dockerfile").write_text(
        f"FROM {base_image}\nCOPY wheels /tmp/wheels\n"
        "RUN python3 -m pip install --break-system-packages --no-index --find-links /tmp/wheels scikit-learn "
        "&& rm -rf /tmp/wheels\nCOPY marker.txt /opt/own/marker.txt\n"
        'ENTRYPOINT ["/bin/false"]\n')
    (root / "own" / "marker.txt").write_text("built from the user's Dockerfile\n")
    (root / "own" / ".dockerignore").write_text("*.tmp\n")


def test_conda_and_dockerfile_environments_serve_a_model_registered_from_a_path(
        docker_engine: DockerEngine, base_image: str, wheelhouse: Path, tmp_path: Path,
        pytestconfig: pytest.Config, record_property: Any) -> None:
    client = docker_engine.client
    started = time.monotonic()
    spec, out = tmp_path / "spec", tmp_path / "stack"
    write_spec(spec, base_image, wheelhouse)
    compile_project(load_graph([spec]), out)
    config = {"mlspec:baseImage": base_image, "mlspec:wheelhouse": str(wheelhouse),
              "mlspec:publishAddress": "127.0.0.1"}
    captured = run_program(out, config, mocks=docker_engine)
    provisioned_s = time.monotonic() - started
    assert not docker_engine.errors
    images = captured.of_type(IMAGE)
    assert {i.name for i in images} == {"runtime", "tracking", "sk", "own-source", "own", "iris-file"}
    assert {c.name for c in docker_engine.find(IMAGE)} == {i.name for i in images}

    # The conda file's pip section is in the environment's image (installed offline from the wheelhouse).
    sk = captured.get(IMAGE, "sk").inputs["imageName"]
    probe = client.containers.run(sk, ["python", "-c", "import sklearn; print(sklearn.__version__)"], remove=True,
                                  labels=docker_engine.labels)
    assert probe.decode().strip()

    # The run-once container registered the file as version 1, and its result line says so.
    register = captured.get(CONTAINER, "iris-file")
    assert register.outputs["exitCode"] == 0, register.outputs.get("containerLogs")
    assert registered_versions(register.outputs["containerLogs"]) == {"iris-file": 1}
    assert_runs_as_declared(client, register)
    servers = [r for r in captured.of_type(CONTAINER) if not r.inputs.get("attach")]
    mlflow = next(r for r in servers if {"label": "mlspec.role", "value": "tracking"} in r.inputs["labels"])
    found = tracking_query(client, mlflow.outputs["name"], "/api/2.0/mlflow/registered-models/search")
    assert [m["name"] for m in found["registered_models"]] == ["iris-file"]

    # Both replicas loaded that version: the conda one, and the one on the user's image (its entrypoint is not
    # in the way, and its own files are there).
    for name in ("iris-conda-0", "iris-own-0"):
        replica = captured.get(CONTAINER, name)
        info = assert_runs_as_declared(client, replica)
        assert info["State"]["Health"]["Status"] == "healthy", name
        command = replica.inputs["command"]
        assert command[command.index("--model-uri") + 1] == "models:/iris-file/1", name
    own = client.containers.get(captured.get(CONTAINER, "iris-own-0").outputs["name"])
    assert own.exec_run(["cat", "/opt/own/marker.txt"]).output.decode() == "built from the user's Dockerfile\n"

    # The endpoint answers with the model's predictions, whichever deployment takes the request.
    gateway = next(r for r in servers if {"label": "mlspec.role", "value": "gateway"} in r.inputs["labels"])
    port = gateway.inputs["ports"][0]
    url = f"http://{port['ip']}:{int(port['external'])}/invocations"
    key = next(r.outputs["result"] for r in captured.of_type(PASSWORD) if r.name.endswith("-primary-key"))
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    for _ in range(6):
        status, answer = post(url, REQUEST.read_bytes(), headers)
        assert status == 200, answer
        assert json.loads(answer)["predictions"] == [0, 2]  # a setosa and a virginica

    sizes = {i.inputs["imageName"]: int(client.images.get(i.inputs["imageName"]).attrs["Size"]) for i in images}
    record_property("provision_seconds", round(provisioned_s, 1))
    slowest = sorted(docker_engine.created, key=lambda c: -c.seconds)[:6]
    report(pytestconfig, [
        f"conda + Dockerfile environments and a path model on Docker: provisioned in {provisioned_s:.0f} s",
        *[f"  image {name.split(':')[0]}: {size / 1e6:.0f} MB" for name, size in sorted(sizes.items())],
        *[f"  {c.typ.split(':')[-1]} {c.name}: {c.seconds:.1f} s" for c in slowest],
    ])

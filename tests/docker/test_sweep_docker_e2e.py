"""A small sweep on a real Docker engine: the compiled program's sweep container runs its trials against the
workspace's MLflow server, keeps its study on the workspace volume, registers the best trial's model (its version
read back from the container's log), and, started again, resumes the study instead of running its trials again."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from mlspec.backends.pulumi import compile_project
from mlspec.graph import load_graph
from mlspec.runtime.train import registered_versions
from tests.docker.engine import DockerEngine
from tests.docker.test_iris_docker_e2e import assert_runs_as_declared, tracking_query
from tests.pulumi.harness import run_program

ROOT = Path(__file__).resolve().parents[2]
CONTAINER = "docker:index/container:Container"

pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.timeout(1800)]


def _small_sweep(folder: Path) -> Path:
    """examples/sweep with three trials of two epochs, two at a time."""
    spec = folder / "examples" / "sweep"
    shutil.copytree(ROOT / "examples" / "sweep", spec, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    path = spec / "mlspec.yaml"
    text = path.read_text()
    for old, new in (("max_total_trials: 12", "max_total_trials: 3"), ("epochs: 8", "epochs: 2"),
                     ("delay_evaluation: 4", "delay_evaluation: 2")):
        assert old in text
        text = text.replace(old, new)
    path.write_text(text)
    return spec


def test_a_sweep_runs_in_its_container_registers_the_best_trial_and_resumes_when_started_again(
        docker_engine: DockerEngine, base_image: str, wheelhouse: Path, tmp_path: Path) -> None:
    client = docker_engine.client
    spec = _small_sweep(tmp_path)
    project = tmp_path / "stacks" / "sweep"
    compile_project(load_graph([spec]), project)
    config = {"mlspec:baseImage": base_image, "mlspec:wheelhouse": str(wheelhouse),
              "mlspec:publishAddress": "127.0.0.1"}
    captured = run_program(project, config, mocks=docker_engine)
    assert not docker_engine.errors, docker_engine.errors

    sweep = captured.get(CONTAINER, "tune")
    logs = sweep.outputs["containerLogs"]
    assert sweep.outputs["exitCode"] == 0, logs[-3000:]
    assert_runs_as_declared(client, sweep)
    assert captured.exports["tune.models"] == {"digits-sgd": 1}
    assert logs.count("started: alpha=") == 3 and "best trial" in logs, logs[-3000:]

    # Three child runs of the sweep's run in the workspace's MLflow server, the best one's model registered.
    mlflow = next(r for r in captured.of_type(CONTAINER)
                  if {"label": "mlspec.role", "value": "tracking"} in r.inputs["labels"]).outputs["name"]
    experiments = tracking_query(client, mlflow, "/api/2.0/mlflow/experiments/get-by-name?experiment_name="
                                 "digits-sweep")
    experiment = experiments["experiment"]["experiment_id"]
    search = ("import sys, urllib.request\n"
              "request = urllib.request.Request('http://127.0.0.1:5000/api/2.0/mlflow/runs/search', "
              "data=sys.argv[1].encode(), headers={'Content-Type': 'application/json'})\n"
              "print(urllib.request.urlopen(request, timeout=10).read().decode())")
    body = json.dumps({"experiment_ids": [experiment], "max_results": 100})
    code, output = client.containers.get(mlflow).exec_run(["python", "-c", search, body], user="mlspec")
    assert code == 0, output
    runs = json.loads(output)["runs"]
    tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
    assert len([t for t in tags if "mlflow.parentRunId" in t]) == 3
    version = tracking_query(client, mlflow, "/api/2.0/mlflow/model-versions/get?name=digits-sgd&version=1")
    version_tags = {t["key"]: t["value"] for t in version["model_version"]["tags"]}
    assert {"mlspec.param.alpha", "mlspec.param.loss", "mlspec.sweep.trial"} <= set(version_tags)

    # The study is on the workspace volume (the tracking server mounts it too), in the sweep's hash's folder.
    code, output = client.containers.get(mlflow).exec_run(["sh", "-c", "ls /mlspec/sweeps/tune/*/optuna.db"],
                                                          user="mlspec")
    assert code == 0 and output.decode().count("optuna.db") == 1, output

    # The same container started again (as `pulumi up --replace` would run it): it resumes the finished study.
    container = client.containers.get(sweep.outputs["name"])
    restarted = int(time.time()) - 1
    container.start()
    deadline = time.monotonic() + 300
    while True:
        container.reload()
        if container.status == "exited":
            break
        assert time.monotonic() < deadline, container.logs()[-3000:]
        time.sleep(1)
    again = container.logs(since=restarted).decode(errors="replace")
    assert container.attrs["State"]["ExitCode"] == 0, again[-3000:]
    assert "resuming: 3 of 3 trials already finished" in again, again[-3000:]
    assert registered_versions(again) == {"digits-sgd": 1}  # the same files: the same version

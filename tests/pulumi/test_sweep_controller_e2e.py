"""The sweep controller a compiled Docker program declares, run as its container would (here: its command as a
process on this machine, against a real MLflow server with proxied artifacts, as the workspace's): trials are
child runs of the sweep's run, the best trial's model is registered with its parameters, and the same container
run again resumes the study on the volume instead of running its trials again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlspec.pulumi.containers import STORAGE
from mlspec.pulumi.job import RUN_DIR
from mlspec.pulumi.sweep import SWEEPRUN
from mlspec.runtime.train import registered_versions
from tests.mlflow_server import mlflow_server as running_mlflow
from tests.pulumi.conftest import CONTAINER
from tests.pulumi.harness import container_files, run_program
from tests.pulumi.sweep_spec import SweepMocks, compile_sweep

pytestmark = pytest.mark.e2e

FILES = "/opt/mlspec-job/files"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The workspace's tracking server as the Docker target runs it: sqlite store, proxied artifacts."""
    with running_mlflow(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str) -> tuple[list[str], Path]:
    """The container's command and contract, with its paths and tracking URI made this machine's."""
    base = tmp_path_factory.mktemp("sweep")
    project = compile_sweep(base, "max_total_trials: 12", "max_total_trials: 3")
    captured = run_program(project, {}, mocks=SweepMocks())
    (container,) = [r for r in captured.of_type(CONTAINER) if r.name == "tune"]
    text = container_files(container.inputs)[SWEEPRUN]
    local = {FILES: str(base / "examples" / "sweep"), RUN_DIR: str(base / "run"),
             f"{STORAGE}/sweeps": str(base / "volume" / "sweeps"), "http://mlflow:5000": mlflow_server}
    for inside, here in local.items():
        text = text.replace(inside, here)
    contract = base / "sweeprun.json"
    contract.write_text(text)
    command = container.inputs["command"]
    start = len(command) - 4  # after the files wrapper (mlspec.runtime.envfiles), which writes the contract
    assert command[start:] == ["python", "-m", "mlspec.runtime.sweep", SWEEPRUN]
    return [sys.executable, *command[start + 1:-1], str(contract)], base


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # The image's venv is first on its PATH: here, the one running the tests (scikit-learn, MLflow, Optuna).
    # The image's mlspec is this checkout's.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "NO_COLOR": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_compiled_controller_runs_the_sweep_and_resumes_it_when_run_again(
        controller: tuple[list[str], Path], mlflow_server: str) -> None:
    from mlflow import MlflowClient

    command, base = controller
    first = _run(command, base)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert registered_versions(first.stdout) == {"digits-sgd": 1}, first.stdout
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("digits-sweep")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    [parent] = {r.data.tags["mlflow.parentRunId"] for r in children}
    assert len(children) == 3 and client.get_run(parent).info.run_name == "tune"
    version = client.get_model_version("digits-sgd", "1")
    best = next(r for r in children if r.info.run_id == version.run_id)  # registered from the best trial's run
    scored = [r for r in children if r.info.status == "FINISHED"]
    assert best.data.metrics["val_accuracy"] == max(r.data.metrics["val_accuracy"] for r in scored)
    assert version.tags["mlspec.param.loss"] == best.data.params["loss"]
    assert version.tags["mlspec.param.alpha"] == best.data.params["alpha"]
    studies = list((base / "volume" / "sweeps" / "tune").glob("*/optuna.db"))
    assert len(studies) == 1  # on the volume, in the folder of the sweep's content hash

    # The same container again (`pulumi up --replace`): the study on the volume says every trial is done.
    again = _run(command, base)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "resuming: 3 of 3 trials already finished" in again.stdout, again.stdout
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    assert len([r for r in runs if r.data.tags.get("mlflow.parentRunId")]) == 3
    assert json.loads(again.stdout.splitlines()[-1].partition("mlspec-result: ")[2])["status"] == "succeeded"

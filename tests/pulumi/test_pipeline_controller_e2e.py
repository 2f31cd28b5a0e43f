"""The pipeline runner a compiled Docker program declares, run as its container would (here: its command as a
process on this machine, against a real MLflow server with proxied artifacts, as the workspace's): the steps are
child runs of the pipeline's run and the model is registered; the container of the pipeline compiled again with the
train step's code changed reuses prepare from the volume and runs train (and what reads it) again."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlspec.pulumi.pipeline import PIPELINERUN
from mlspec.runtime.pipeline.contract import CONTAINER_FOLDER
from mlspec.runtime.train import registered_versions
from tests.mlflow_server import mlflow_server as running_mlflow
from tests.pulumi.conftest import CONTAINER
from tests.pulumi.harness import container_files, run_program
from tests.pulumi.pipeline_spec import PipelineMocks, compile_pipeline

pytestmark = pytest.mark.e2e

FILES = "/opt/mlspec-job/files"
REPO = Path(__file__).resolve().parents[2]
EDIT, EDITED = "LogisticRegression(C=args.C,", "LogisticRegression(C=args.C / 2,"  # train.py: another model


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The workspace's tracking server as the Docker target runs it: sqlite store, proxied artifacts."""
    with running_mlflow(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


def _controller(base: Path, volume: Path, mlflow_server: str, *edit: str) -> list[str]:
    """The container's command with its contract, its paths and tracking URI made this machine's (the volume one
    folder shared by every compile, as the workspace volume is)."""
    project = compile_pipeline(base, *edit, "src/train/train.py") if edit else compile_pipeline(base)
    (container,) = [r for r in run_program(project, {}, mocks=PipelineMocks()).of_type(CONTAINER)
                    if r.name == "wine"]
    text = container_files(container.inputs)[PIPELINERUN]
    for inside, here in {FILES: str(base / "examples" / "pipeline"), CONTAINER_FOLDER: str(volume),
                         "http://mlflow:5000": mlflow_server}.items():
        text = text.replace(inside, here)
    contract = base / "pipelinerun.json"
    contract.write_text(text)
    command = container.inputs["command"]
    start = len(command) - 4  # after the files wrapper (mlspec.runtime.envfiles), which writes the contract
    assert command[start:] == ["python", "-m", "mlspec.runtime.pipeline", PIPELINERUN]
    return [sys.executable, *command[start + 1:-1], str(contract)]


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # The image's venv is first on its PATH: here, the one running the tests (scikit-learn, MLflow).
    # The image's mlspec is this checkout's.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "NO_COLOR": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_compiled_runner_runs_the_pipeline_and_reuses_unchanged_steps_after_an_edit(
        tmp_path: Path, mlflow_server: str) -> None:
    from mlflow import MlflowClient

    volume = tmp_path / "volume"
    first = _run(_controller(tmp_path / "a", volume, mlflow_server), tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert registered_versions(first.stdout) == {"wine-clf": 1}, first.stdout
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("wine-pipeline")

    def children(parent: str) -> dict[str, Any]:
        runs = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
        return {r.data.tags["mlspec.pipeline.step"]: r for r in runs}

    def pipeline_runs() -> list[Any]:  # the pipeline's own runs, not its steps'
        return [r for r in client.search_runs([experiment.experiment_id], "tags.`mlspec.pipeline` = 'wine'")
                if "mlflow.parentRunId" not in r.data.tags]

    (parent,) = pipeline_runs()
    assert parent.info.run_name == "wine" and parent.info.status == "FINISHED"
    steps = children(parent.info.run_id)
    assert set(steps) == {"prepare", "train", "evaluate"}
    version = client.get_model_version("wine-clf", "1")
    assert version.run_id == steps["train"].info.run_id
    assert list((volume / "wine" / "steps").iterdir())  # the step results are on the volume

    # The pipeline compiled again with train.py changed: a new container, the same volume.
    again = _run(_controller(tmp_path / "b", volume, mlflow_server, EDIT, EDITED), tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "step prepare reused" in again.stdout and "step train started" in again.stdout, again.stdout
    assert "step prepare started" not in again.stdout
    assert registered_versions(again.stdout) == {"wine-clf": 2}, again.stdout
    (latest,) = [r for r in pipeline_runs() if r.info.run_id != parent.info.run_id]
    assert latest.data.tags["mlspec.step.prepare"] == "reused" and latest.data.tags["mlspec.step.train"] == "succeeded"
    assert latest.data.tags["mlspec.step.evaluate"] == "succeeded"  # it reads the new model
    assert client.get_model_version("wine-clf", "2").run_id == children(latest.info.run_id)["train"].info.run_id

"""The AutoML runner a compiled Docker program declares, run as its container would (here: its command as a process
on this machine, against a real MLflow server with proxied artifacts, as the workspace's): two searches as processes,
every candidate a child run of the job's run, the best pipeline registered as version 1 and reported in the log's
result line, from which the program reads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlspec.pulumi.automl import AUTOMLRUN
from mlspec.pulumi.job import FILES, RUN_DIR
from mlspec.runtime.train import registered_versions
from tests.mlflow_server import mlflow_server as running_mlflow
from tests.pulumi.conftest import CONTAINER, RegistryMocks, compile_copy
from tests.pulumi.harness import container_files, run_program

pytestmark = pytest.mark.e2e

BUDGET_S = 12
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The workspace's tracking server as the Docker target runs it: sqlite store, proxied artifacts."""
    with running_mlflow(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


def _short_budget(spec: Path) -> None:
    path = spec / "mlspec.yaml"
    text = path.read_text()
    assert "timeout_minutes: 1\n" in text and "trial_timeout_minutes: 0.5" in text
    path.write_text(text.replace("timeout_minutes: 1\n", f"timeout_minutes: {BUDGET_S / 60:.1f}\n")
                    .replace("trial_timeout_minutes: 0.5", "trial_timeout_minutes: 0.1")
                    .replace("n_cross_validations: 5", "n_cross_validations: 3"))


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The container's command and contract, with its paths and tracking URI made this machine's, run once."""
    base = tmp_path_factory.mktemp("automl")
    project = compile_copy(base, "automl", _short_budget)
    captured = run_program(project, {}, mocks=RegistryMocks())
    (container,) = [r for r in captured.of_type(CONTAINER) if r.name == "wine-automl"]
    text = container_files(container.inputs)[AUTOMLRUN]
    for inside, here in {FILES: str(base / "examples" / "automl"), RUN_DIR: str(base / "run"),
                         "http://mlflow:5000": mlflow_server}.items():
        text = text.replace(inside, here)
    contract = base / "automlrun.json"
    contract.write_text(text)
    command = container.inputs["command"]
    start = len(command) - 6  # after the files wrapper (mlspec.runtime.envfiles), which writes the contract
    assert command[start:start + 4] == ["python", "-m", "mlspec.runtime.automl", AUTOMLRUN]
    # The image's venv is first on its PATH: here, the one running the tests (FLAML, LightGBM, MLflow's client).
    # The image's mlspec is this checkout's.
    env = {**os.environ, "NO_COLOR": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    local = [sys.executable, *command[start + 1:start + 3], str(contract), "--result", str(base / "run" / "r.json")]
    done = subprocess.run(local, cwd=base, env=env, capture_output=True, text=True, timeout=300)
    return done, base


def test_the_compiled_runner_searches_logs_candidates_as_child_runs_and_registers_version_1(
        ran: tuple[subprocess.CompletedProcess[str], Path], mlflow_server: str) -> None:
    from mlflow import MlflowClient

    done, base = ran
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert registered_versions(done.stdout) == {"wine-clf": 1}, done.stdout  # what the program reads
    assert "with 2 process(es)" in done.stdout and "search 1: best of" in done.stdout, done.stdout
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("wine-automl")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and parent.info.run_name == "wine-automl"
    assert parent.data.tags["mlspec.workspace"] == "automl-demo"
    # On a loaded machine the searches' imports take much of a short budget: a few candidates each at least.
    assert len(children) >= 2 and int(parent.data.tags["mlspec.automl.candidates"]) == len(children)
    assert {c.data.tags["mlspec.automl.search"] for c in children} == {"0", "1"}  # both searches' candidates
    version = client.get_model_version("wine-clf", "1")
    assert version.run_id == parent.info.run_id
    scored = [c for c in children if "AUC_weighted" in c.data.metrics]
    best = next(c for c in children if c.info.run_id == parent.data.tags["mlspec.automl.best_run"])
    assert best.data.metrics["AUC_weighted"] == max(c.data.metrics["AUC_weighted"] for c in scored) > 0.9
    result = json.loads((base / "run" / "r.json").read_text())
    assert result["status"] == "succeeded" and result["models"][0]["version"] == 1


def test_an_unreadable_contract_exits_2_saying_why(tmp_path: Path) -> None:
    from mlspec.runtime.automl.__main__ import main

    (tmp_path / "bad.json").write_text('{"job": "x"}')
    assert main([str(tmp_path / "bad.json")]) == 2

"""The pipeline and AutoML examples on a real Docker engine: each compiled program's one run-to-completion container
runs the local engine's runner against the workspace's MLflow server and registers the model (its version read
back from the container's log); the pipeline's container started again reuses its steps from the workspace volume."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from mlspec.backends.pulumi import compile_project
from mlspec.graph import load_graph
from mlspec.runtime.train import registered_versions
from tests.docker.engine import DockerEngine
from tests.docker.test_iris_docker_e2e import assert_runs_as_declared
from tests.pulumi.harness import run_program

ROOT = Path(__file__).resolve().parents[2]
CONTAINER = "docker:index/container:Container"

pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.timeout(1800)]


def _copy(example: str, folder: Path) -> Path:
    spec = folder / "examples" / example
    shutil.copytree(ROOT / "examples" / example, spec, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    return spec


def _run(spec: Path, project: Path, config: dict[str, str], engine: DockerEngine,
         job: str) -> tuple[str, dict[str, Any], str]:
    """Compile and run the program; the job container's log, the exports and the container's name."""
    compile_project(load_graph([spec]), project)
    captured = run_program(project, config, mocks=engine)
    assert not engine.errors, engine.errors
    container = captured.get(CONTAINER, job)
    logs = container.outputs["containerLogs"]
    assert container.outputs["exitCode"] == 0, logs[-3000:]
    assert_runs_as_declared(engine.client, container)
    return logs, captured.exports, container.outputs["name"]


@pytest.fixture
def config(base_image: str, wheelhouse: Path) -> dict[str, str]:
    return {"mlspec:baseImage": base_image, "mlspec:wheelhouse": str(wheelhouse), "mlspec:publishAddress": "127.0.0.1"}


def test_the_pipeline_runs_its_steps_in_its_container_and_started_again_reuses_them(
        docker_engine: DockerEngine, config: dict[str, str], tmp_path: Path) -> None:
    spec = _copy("pipeline", tmp_path)
    logs, exports, name = _run(spec, tmp_path / "stacks" / "pipeline", config, docker_engine, "wine")
    for step in ("prepare", "train", "evaluate"):
        assert f"step {step} succeeded" in logs, logs[-3000:]
    assert exports["wine.models"] == {"wine-clf": 1}

    # The same container started again (as `pulumi up --replace` would run it): every step's result is on the
    # workspace volume, so each is reused and the same version stands.
    container = docker_engine.client.containers.get(name)
    restarted = int(time.time()) - 1
    container.start()
    deadline = time.monotonic() + 300
    while container.reload() or container.status != "exited":
        assert time.monotonic() < deadline, container.logs()[-3000:]
        time.sleep(1)
    again = container.logs(since=restarted).decode(errors="replace")
    assert container.attrs["State"]["ExitCode"] == 0, again[-3000:]
    for step in ("prepare", "train", "evaluate"):
        assert f"step {step} reused" in again, again[-3000:]
    assert registered_versions(again) == {"wine-clf": 1}


def test_the_automl_job_searches_in_its_container_and_registers_the_best_pipeline(
        docker_engine: DockerEngine, config: dict[str, str], tmp_path: Path) -> None:
    spec = _copy("automl", tmp_path)
    path = spec / "mlspec.yaml"
    text = path.read_text()
    for old, new in (("  timeout_minutes: 1\n", "  timeout_minutes: 0.25\n"),
                     ("trial_timeout_minutes: 0.5", "trial_timeout_minutes: 0.1")):
        assert old in text
        text = text.replace(old, new)
    path.write_text(text)
    logs, exports, _ = _run(spec, tmp_path / "stacks" / "automl", config, docker_engine, "wine-automl")
    assert exports["wine-automl.models"] == {"wine-clf": 1}, logs[-3000:]

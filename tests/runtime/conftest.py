"""Fixtures for the training runner: a real MLflow sqlite store per test module, and JobRun builders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlspec.runtime.jobrun import JobRun

REPO = Path(__file__).resolve().parents[2]
IRIS = REPO / "examples" / "iris"
PYTHON_BIN = str(Path(sys.executable).parent)  # the venv running the tests: its python has sklearn and mlflow


@dataclass(frozen=True)
class Store:
    root: Path
    tracking_uri: str

    @property
    def artifacts(self) -> str:
        return str(self.root / "artifacts")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """One MLflow store per module: creating a sqlite store runs MLflow's migrations, which takes seconds."""
    from mlspec.runtime import tracking

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracking.ensure_experiment(uri, "warm-up", str(root / "artifacts"))
    return Store(root, uri)


MakeRun = Callable[..., JobRun]


@pytest.fixture
def make_run(tmp_path: Path, request: pytest.FixtureRequest) -> MakeRun:
    """Build a JobRun in tmp_path; the tracking store is the module's when the test uses `store`, else a dummy."""

    def build(command: str, **fields: Any) -> JobRun:
        store: Store | None = request.getfixturevalue("store") if "store" in request.fixturenames else None
        workdir = tmp_path / "work"
        values: dict[str, Any] = {
            "job": "job",
            "experiment": "tests",
            "tracking_uri": store.tracking_uri if store else f"sqlite:///{tmp_path / 'unused.db'}",
            "artifact_location": store.artifacts if store else str(tmp_path / "artifacts"),
            "command": command,
            "code": str(tmp_path),
            "workdir": str(workdir),
            "path_prefix": PYTHON_BIN,
        }
        values.update(fields)
        return JobRun.model_validate(values)

    return build


@pytest.fixture
def make_iris_run(store: Store) -> Callable[..., JobRun]:
    """The example iris job, as the engine would hand it over, writing into the given workdir."""

    def build(workdir: Path, **fields: Any) -> JobRun:
        values: dict[str, Any] = {
            "job": "train",
            "experiment": "iris",
            "tracking_uri": store.tracking_uri,
            "artifact_location": store.artifacts,
            "command": "python train.py --data ${{inputs.data}} --algo logistic --C ${{inputs.C}}"
            " --model-dir ${{outputs.model}}",
            "code": str(IRIS / "src"),
            "workdir": str(workdir),
            "inputs": {"data": {"path": str(IRIS / "data" / "iris.csv")}, "C": {"value": 1.0}},
            "outputs": {"model": {"path": str(workdir / "outputs" / "model"), "type": "model",
                                  "register_as": "iris-clf", "flavor": "sklearn", "aliases": ["champion"]}},
            "path_prefix": PYTHON_BIN,
            "content_hash": "sha256:iris-test",
        }
        values.update(fields)
        return JobRun.model_validate(values)

    return build


@dataclass(frozen=True)
class CliOutcome:
    returncode: int
    stdout: str
    stderr: str
    result: dict[str, Any] | None


@pytest.fixture
def train_cli(tmp_path: Path) -> Callable[[JobRun], CliOutcome]:
    """Run `python -m mlspec.runtime.train` on a JobRun in a fresh process, as a container would."""

    def run(job_run: JobRun) -> CliOutcome:
        path = tmp_path / f"{job_run.job}-{len(list(tmp_path.glob('*.jobrun.json')))}.jobrun.json"
        job_run.dump(path)
        result_path = path.with_suffix(".result.json")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        proc = subprocess.run(
            [sys.executable, "-m", "mlspec.runtime.train", str(path), "--result", str(result_path)],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
        )
        result = json.loads(result_path.read_text()) if result_path.exists() else None
        return CliOutcome(proc.returncode, proc.stdout, proc.stderr, result)

    return run

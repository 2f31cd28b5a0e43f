"""Who owns the processes `mlspec up` starts: its jobs stop with it, the supervisor never takes them for orphans,
no file of the user's stands in for mlspec, and a job's `python` is the interpreter mlspec means."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlspec.backends.local.processes import workspace_processes
from tests.local.conftest import EXAMPLES, mlspec, status
from tests.local.test_kill_recovery import up_until

pytestmark = pytest.mark.e2e

REQUEST = EXAMPLES / "iris" / "request.json"


def save_model(folder: Path) -> None:
    """A scikit-learn classifier of the iris flowers, saved as a plain joblib file (a Model with `path:`)."""
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rows = np.loadtxt(EXAMPLES / "iris" / "data" / "iris.csv", delimiter=",", skiprows=1)
    model = LogisticRegression(max_iter=500).fit(rows[:, :4], rows[:, 4].astype(int))
    joblib.dump(model, folder / "model.joblib")


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "project"
    root.mkdir()
    save_model(root)
    yield root
    mlspec("down", str(root), "--yes", check=False)


def invoke(root: Path, endpoint: str) -> list[int]:
    result = mlspec("endpoint", "invoke", endpoint, "--data", str(REQUEST), str(root))
    return list(json.loads(result.stdout)["predictions"])


FIRST_UP = """\
kind: Workspace
name: first-up
---
kind: Data
name: to-score
path: scoring/
---
kind: Job
name: slow
command: python -c "import time; print('slow job started', flush=True); time.sleep(20); print('slow job done')"
---
kind: Model
name: clf
path: model.joblib
flavor: sklearn
---
kind: Endpoint
name: online
type: online
deployments: {blue: {model: clf@latest, instance_count: 1}}
traffic: {blue: 100}
---
kind: Endpoint
name: nightly
type: batch
model: clf@latest
input: data:to-score
output: {path: predictions}
"""


def test_the_first_up_keeps_the_jobs_and_batch_runs_it_started(project: Path) -> None:
    (project / "mlspec.yaml").write_text(FIRST_UP)
    (project / "scoring").mkdir()
    header = "sepal_length,sepal_width,petal_length,petal_width\n"
    (project / "scoring" / "rows.csv").write_text(header + "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n" * 50)
    # The online endpoint starts the workspace's supervisor while the job (and the batch run) are running.
    result = mlspec("up", str(project), "--yes", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "slow job done" in result.stdout
    assert status(project)["resources"]["endpoint/nightly"]["outputs"]["rows_scored"] == 100
    assert invoke(project, "online") == [0, 2]


DSL_SPEC = """\
from mlspec.dsl import Endpoint, Model, Workspace

Workspace(name="dsl-demo")
Model(name="clf", path="model.joblib", flavor="sklearn")
Endpoint(name="online", type="online", deployments={"blue": {"model": "clf@latest"}}, traffic={"blue": 100})
"""


def test_a_dsl_spec_folder_serves_from_its_own_folder(project: Path) -> None:
    (project / "mlspec.py").write_text(DSL_SPEC)
    # As the `mlspec` command runs (its script's folder first on sys.path, not the current folder), in the
    # spec folder: every process mlspec starts from here must still import mlspec, not this mlspec.py.
    env = {**os.environ, "NO_COLOR": "1"}
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-P", "-m", "mlspec.cli.main", "up", "--yes"], cwd=project, env=env,
                            text=True, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - began < 120
    assert invoke(project, "online") == [0, 2]


def test_a_job_runs_with_mlspecs_interpreter_whatever_python_is_first_on_path(project: Path) -> None:
    (project / "mlspec.yaml").write_text(
        "kind: Workspace\nname: interpreter\n---\nkind: Job\nname: which\n"
        "command: python -c \"import joblib, sys; print('interpreter', sys.executable)\"\n")
    impostor = project / "impostor"
    impostor.mkdir()
    (impostor / "python").write_text("#!/bin/sh\necho 'not the python mlspec runs with' >&2\nexit 7\n")
    (impostor / "python").chmod(0o755)
    env = {**os.environ, "NO_COLOR": "1", "PATH": f"{impostor}{os.pathsep}{os.environ['PATH']}"}
    # mlspec itself run by its full path, as pipx or an unactivated virtualenv does.
    result = subprocess.run([sys.executable, "-m", "mlspec.cli.main", "up", str(project), "--yes"], env=env,
                            text=True, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(line for line in result.stdout.splitlines() if "interpreter " in line)
    assert Path(line.split("interpreter ", 1)[1]).resolve() == Path(sys.executable).resolve()


def run_statuses(root: Path) -> list[str]:
    db = sqlite3.connect(root / ".mlspec" / "mlflow.db")
    try:
        return [row[0] for row in db.execute("SELECT status FROM runs WHERE name = 'long'")]
    finally:
        db.close()


def test_the_jobs_of_a_killed_up_stop_with_it_and_their_runs_end_killed(project: Path) -> None:
    (project / "mlspec.yaml").write_text(
        "kind: Workspace\nname: killed\n---\nkind: Job\nname: long\n"
        "command: python -c \"import time; print('training', flush=True); time.sleep(300)\"\n")
    up_until(project, "[long] training")
    workspace = str((project / ".mlspec").resolve())
    deadline = time.monotonic() + 20
    while (left := workspace_processes(workspace)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"the job outlived the up that ran it: {left}"
    deadline = time.monotonic() + 30
    while run_statuses(project) != ["KILLED"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert run_statuses(project) == ["KILLED"]

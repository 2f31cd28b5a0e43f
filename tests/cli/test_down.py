"""`mlspec down`: lists what it removes, works from the state when the spec is broken, waits until no process of
the workspace is left, and --purge deletes models, runs and data snapshots."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.processes import workspace_processes
from mlspec.backends.local.supervisor_start import running

SPEC = """\
kind: Workspace
name: down-demo
---
kind: Compute
name: cpu
type: cluster
max_nodes: 2
---
kind: Data
name: rows
path: rows.csv
---
kind: Job
name: count
code: src/
compute: cpu
command: python -c "print(open('${{inputs.rows}}').read().count(chr(10)))"
inputs: {rows: data:rows}
---
kind: Model
name: clf
path: model.pkl
flavor: sklearn
---
kind: Endpoint
name: scores
deployments:
  blue: {model: clf@latest, instance_count: 2}
traffic: {blue: 100}
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    from sklearn.linear_model import LogisticRegression

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "noop.py").write_text("")
    (tmp_path / "rows.csv").write_text("x,y\n0,0\n1,1\n")
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(LogisticRegression().fit([[0.0], [1.0]], [0, 1])))
    (tmp_path / "mlspec.yaml").write_text(SPEC)
    return tmp_path


def _mlspec(spec: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlspec.cli.main", *args], cwd=spec, text=True, capture_output=True,
                          env={**os.environ, "NO_COLOR": "1"}, timeout=300)


@pytest.mark.e2e
def test_down_of_a_broken_spec_lists_removes_and_purges_everything_from_the_state(spec: Path) -> None:
    workspace = spec / ".mlspec"
    try:
        up = _mlspec(spec, "up", "--yes")
        assert up.returncode == 0, up.stdout + up.stderr
        live = workspace_processes(str(workspace.resolve()))
        assert len(live) == 3, live  # two replicas and the gateway
        (spec / "mlspec.yaml").write_text(SPEC.replace("kind: Data", "kind: [Data"))  # the spec no longer loads
        refused = _mlspec(spec, "down")  # no terminal: lists, then refuses to go on without --yes
        assert refused.returncode == 2 and "pass --yes" in refused.stderr, refused.stderr
        listing = refused.stdout.splitlines()
        assert f"mlspec down removes 6 resource(s) of the workspace in {workspace}:" in listing, refused.stdout
        assert "  - endpoint/scores" in listing and "  - model/clf" in listing and "  - job/count" in listing
        for pid, process_id in live.items():
            assert f"      process {process_id} (pid {pid})" in listing, refused.stdout
        down = _mlspec(spec, "down", "--yes", "--purge")
        assert down.returncode == 0, down.stdout + down.stderr
        assert "no process of the workspace is left" in down.stdout
        # Checked at once: `down` itself waited for the replicas, the gateway and the supervisor to exit.
        assert workspace_processes(str(workspace.resolve())) == {}
        assert not running(WorkspacePaths(workspace))
        assert not (workspace / "mlflow.db").exists() and not (workspace / "artifacts").exists()
        assert not (workspace / "datastore" / "rows").exists() and not (workspace / "runs" / "count").exists()
        (spec / "mlspec.yaml").write_text(SPEC)
        assert "No registered models yet" in _mlspec(spec, "models").stdout
        assert "No runs yet" in _mlspec(spec, "runs").stdout
    finally:
        _mlspec(spec, "down", "--yes", "--workspace", str(workspace))


def test_down_with_neither_a_loadable_spec_nor_a_workspace_says_how_to_name_one(tmp_path: Path) -> None:
    (tmp_path / "mlspec.yaml").write_text("kind: [Workspace\n")
    result = _mlspec(tmp_path, "down", "--yes")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--workspace DIR" in result.stderr and "the '[' opened here is not closed" in result.stderr
    named = _mlspec(tmp_path, "down", "--yes", "--workspace", str(tmp_path / "nowhere"))
    assert named.returncode == 1 and "holds no mlspec state" in named.stderr


def test_down_names_the_processes_that_outlive_it(spec: Path) -> None:
    from mlspec.backends.local.processes import ID_VAR, WORKSPACE_VAR
    from mlspec.backends.local.state import StateStore
    from mlspec.plan import Record

    workspace = spec / ".mlspec"
    workspace.mkdir()
    store = StateStore(workspace / "state.db")
    store.put(Record("compute/cpu", "Compute", "0" * 64, {}, {}, {}, {"capacity": 2}, "ready"))
    store.close()
    env = {**os.environ, WORKSPACE_VAR: str(workspace.resolve()), ID_VAR: "endpoint/scores/stray"}
    stray = subprocess.Popen(["sleep", "60"], env=env)
    try:
        result = _mlspec(spec, "down", "--yes", "--wait", "1")
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"1 process(es) of the workspace still run 1s after `down`: pid {stray.pid} (endpoint/scores/stray)" \
            in result.stderr
        assert f"Stop them with `kill {stray.pid}`" in result.stderr
    finally:
        stray.kill()
        stray.wait()

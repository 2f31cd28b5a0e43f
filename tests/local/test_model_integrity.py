"""The digest that gates unpickling comes from the workspace's state: rewriting MLflow's store (the files and the
version's `mlspec.sha256` tag to match) cannot make a restarted replica or a batch run load the changed model.
And what mlspec writes in the workspace is its owner's alone."""

from __future__ import annotations

import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import mlflow.sklearn
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.state import StateStore
from mlspec.runtime.serving.integrity import TAG, model_digest
from mlspec.runtime.tracking import client
from tests.local.conftest import mlspec

pytestmark = pytest.mark.e2e

SPEC = """\
kind: Workspace
name: integrity
---
kind: Model
name: clf
path: model.joblib
flavor: sklearn
---
kind: Endpoint
name: ep
auth: none
deployments:
  blue: {model: clf, instance_count: 1}
traffic: {blue: 100}
---
kind: Data
name: to-score
path: scoring/
---
kind: Endpoint
name: nightly
type: batch
model: clf
input: data:to-score
output: {path: predictions}
"""
ROWS = {"dataframe_split": {"columns": ["x"], "data": [[0.0], [3.0]]}}
CHANGED = 7  # what the substituted model answers for every row


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One deployed workspace for the module: the mode test reads it, then the integrity test tampers with it."""
    import pandas as pd

    folder = tmp_path_factory.mktemp("integrity")
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    joblib.dump(LogisticRegression().fit(frame, [0, 0, 1, 1]), folder / "model.joblib")
    (folder / "scoring").mkdir()
    (folder / "scoring" / "first.csv").write_text("x\n0.0\n3.0\n")
    (folder / "mlspec.yaml").write_text(SPEC)
    mlspec("up", str(folder), "--yes")
    yield folder
    mlspec("down", str(folder), "--yes", check=False)


def test_the_workspace_is_its_owners_alone(workspace: Path) -> None:
    root = workspace / ".mlspec"
    found = [root, *root.rglob("*")]
    names = {p.relative_to(root).as_posix() for p in found}
    assert {"state.db", "mlflow.db", "endpoints/ep/gateway.json", "logs/ep-blue-0.log", "logs/supervisor.log"} <= names
    assert any(p.name == "model.pkl" for p in found)  # the registered model's files too
    shared = [f"{p.relative_to(root)} {stat.filemode(p.lstat().st_mode)}" for p in found
              if not p.is_symlink() and p.lstat().st_mode & 0o077]
    assert shared == [], "readable or writable by others"


def rewrite_registry(spec: Path, tmp_path: Path) -> str:
    """Swap the version's pickle for another model's and set its tag to the new files' digest, as someone who can
    write mlflow.db and the artifacts could."""
    import pandas as pd

    registry = client(f"sqlite:///{spec / '.mlspec' / 'mlflow.db'}")
    run_id = registry.get_model_version("clf", "1").run_id
    real = next(p.parent for p in (spec / ".mlspec" / "artifacts").rglob("MLmodel") if run_id in p.parts)
    other = DummyClassifier(strategy="constant", constant=CHANGED).fit(pd.DataFrame({"x": [0.0, 1.0]}),
                                                                         [CHANGED, CHANGED])
    mlflow.sklearn.save_model(other, tmp_path / "other", serialization_format="cloudpickle")
    (real / "model.pkl").write_bytes((tmp_path / "other" / "model.pkl").read_bytes())
    digest = model_digest(real)
    registry.set_model_version_tag("clf", "1", TAG, digest)
    return digest


def predictions(address: str) -> list[int] | None:
    """What the replica at `unix:/PATH` answers, or None while it does not."""
    transport = httpx.HTTPTransport(uds=address.removeprefix("unix:"))
    try:
        with httpx.Client(transport=transport, timeout=5) as replica:
            answer = replica.post("http://replica/invocations", json=ROWS)
    except httpx.TransportError:
        return None
    return [int(p) for p in answer.json()["predictions"]] if answer.status_code == 200 else None


def test_a_replica_refuses_files_rewritten_with_their_tag(workspace: Path, tmp_path: Path) -> None:
    store = StateStore(WorkspacePaths(workspace / ".mlspec").state_db)
    replica = next(r for r in store.processes("endpoint/ep") if "/blue/" in r.id)
    assert "--sha256" in replica.argv  # the digest recorded at registration travels with the replica
    assert replica.health is not None and replica.health.startswith("unix:/")
    address = replica.health.removesuffix(":/health")
    assert predictions(address) == [0, 1]

    rewrite_registry(workspace, tmp_path)
    assert replica.pid is not None
    os.kill(replica.pid, signal.SIGKILL)  # the supervisor starts it again: it loads the files anew
    log = Path(replica.log)
    seen = log.stat().st_size
    deadline = time.monotonic() + 90
    refused = ""
    while time.monotonic() < deadline and "refusing" not in refused.lower():
        assert predictions(address) != [CHANGED, CHANGED], "the restarted replica unpickled the changed model"
        refused = log.read_bytes()[seen:].decode(errors="replace")
        time.sleep(0.2)
    assert "does not match" in refused or "differs from" in refused, refused
    store.close()


def test_a_batch_run_refuses_them_too(workspace: Path) -> None:
    """After the rewrite above (tests run in file order): new data re-scores with the same version, and fails."""
    (workspace / "scoring" / "second.csv").write_text("x\n1.0\n")
    result = mlspec("up", str(workspace), "--yes", check=False)
    assert result.returncode != 0
    assert "does not match" in result.stdout + result.stderr or "differs from" in result.stdout + result.stderr, \
        result.stdout + result.stderr
    scored = "".join(p.read_text() for p in (workspace / "predictions").glob("*.csv"))
    assert str(CHANGED) not in scored

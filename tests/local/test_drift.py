"""Drift on the local engine: what really runs is compared with what `up` recorded, `plan` shows the repair with its
reason, `up` makes it, and then `plan` finds nothing. Real processes, a real MLflow store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlspec.backends.local.processes import workspace_processes
from tests.local.conftest import EXAMPLES, mlspec, status

pytestmark = pytest.mark.e2e

SPEC = """\
kind: Workspace
name: drift-demo
defaults: {environment: sklearn}
---
kind: Environment
name: sklearn
requirements: [scikit-learn>=1.4, mlflow>=2.12]
---
kind: Data
name: iris
path: data/iris.csv
---
kind: Job
name: train
code: src/
command: python train.py --data ${{inputs.data}} --algo logistic --C 1.0 --model-dir ${{outputs.model}}
inputs: {data: data:iris}
outputs: {model: {type: model, register_as: iris-clf, flavor: sklearn}}
---
kind: Model
name: iris-clf
job: train
aliases: [champion]
---
kind: Endpoint
name: iris
deployments:
  blue: {model: iris-clf@champion, instance_count: 1}
traffic: {blue: 100}
"""


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One workspace for the module, deployed once; every test leaves it in sync again."""
    folder = tmp_path_factory.mktemp("drift") / "spec"
    folder.mkdir()
    for part in ("data", "src"):
        shutil.copytree(EXAMPLES / "iris" / part, folder / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(EXAMPLES / "iris" / "request.json", folder)
    (folder / "mlspec.yaml").write_text(SPEC)
    mlspec("up", str(folder), "--yes")
    yield folder
    mlspec("down", str(folder), "--yes", check=False)


def planned(spec: Path) -> dict[str, dict[str, Any]]:
    """The changes `plan` shows, by resource id."""
    changes = json.loads(mlspec("plan", str(spec), "--json").stdout)["changes"]
    return {c["id"]: c for c in changes if c["action"] != "noop"}


def in_sync(spec: Path) -> None:
    assert planned(spec) == {}
    assert "No changes" in mlspec("plan", str(spec)).stdout
    assert status(spec)["in_sync"]


def repaired(spec: Path) -> None:
    """`up` repairs, and afterwards nothing is left to do and the endpoint answers."""
    mlspec("up", str(spec), "--yes")
    in_sync(spec)
    answer = mlspec("endpoint", "invoke", "iris", "--data", str(spec / "request.json"), str(spec))
    assert json.loads(answer.stdout)["predictions"] == [0, 2]


def tracking(spec: Path) -> Any:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{(spec / '.mlspec' / 'mlflow.db').resolve()}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def served_version(spec: Path) -> int:
    return int(status(spec)["resources"]["endpoint/iris"]["outputs"]["deployments"]["blue"]["version"])


def test_refresh_reports_no_drift_on_a_fresh_workspace(spec: Path) -> None:
    in_sync(spec)
    result = mlspec("refresh", str(spec), "--detailed-exitcode")
    assert result.stdout.startswith("No drift")


def test_a_hand_edited_gateway_config_is_reconfigured(spec: Path) -> None:
    in_sync(spec)
    config_file = spec / ".mlspec" / "endpoints" / "iris" / "gateway.json"
    config = json.loads(config_file.read_text())
    recorded = json.loads(config_file.read_text())
    config["deployments"]["blue"]["weight"] = 0  # routes nothing: every request answers 503
    config_file.write_text(json.dumps(config))
    url = status(spec)["resources"]["endpoint/iris"]["outputs"]["url"]
    from mlspec.backends.local.live import gateway_health

    # The gateway re-reads its file on SIGHUP (it is not polled: the engine configures it over its control socket).
    pids = [pid for pid, process_id in workspace_processes(str((spec / ".mlspec").resolve())).items()
            if process_id == "endpoint/iris/gateway"]
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGHUP)

    deadline = time.monotonic() + 10
    while (health := gateway_health(url)) and health["deployments"]["blue"]["weight"] != 0:
        assert time.monotonic() < deadline, "the gateway did not reload its edited file"
        time.sleep(0.1)
    change = planned(spec)["endpoint/iris"]
    assert (change["action"], change["verb"]) == ("update", "reconfigure gateway")
    assert change["reasons"] == ["live routing differs from the recorded (gateway.json edited by hand?)"]
    refreshed = mlspec("refresh", str(spec), "--detailed-exitcode", check=False)
    assert refreshed.returncode == 2 and "endpoint/iris  reconfigure gateway: live routing differs" in refreshed.stdout
    repaired(spec)
    assert json.loads(config_file.read_text()) == recorded


def test_a_replica_killed_while_the_supervisor_is_stopped_is_redeployed(spec: Path) -> None:
    in_sync(spec)
    workspace = str((spec / ".mlspec").resolve())
    _stop_supervisor(workspace)
    replica = next(pid for pid, process_id in workspace_processes(workspace).items() if "/blue/" in process_id)
    os.killpg(replica, signal.SIGKILL)
    _wait_gone(replica)
    change = planned(spec)["endpoint/iris"]
    assert (change["verb"], change["reasons"]) == ("redeploy", ["replica blue/0 is not running"])
    assert not status(spec)["in_sync"]
    up = mlspec("up", str(spec), "--yes")
    assert "redeploy: replica blue/0 is not running" in up.stdout
    repaired(spec)
    rows = status(spec)["processes"]
    assert all(row["restarts"] == 0 for row in rows if "/blue/" in row["id"])  # started afresh, not as a crash


def test_an_endpoint_follows_its_alias_when_moved_in_mlflow(spec: Path) -> None:
    in_sync(spec)
    client = tracking(spec)
    current = client.get_model_version_by_alias("iris-clf", "champion")
    moved = client.create_model_version("iris-clf", current.source, current.run_id, tags=current.tags)
    client.set_registered_model_alias("iris-clf", "champion", moved.version)
    change = planned(spec)["endpoint/iris"]
    assert change["verb"] == "redeploy"
    assert change["reasons"] == [f"deployment blue: iris-clf@champion moved {current.version} → {moved.version} "
                                 "(outside mlspec)"]
    repaired(spec)
    assert served_version(spec) == int(moved.version)


def test_a_deleted_registered_version_is_registered_again(spec: Path) -> None:
    in_sync(spec)
    version = int(status(spec)["resources"]["model/iris-clf"]["outputs"]["version"])
    tracking(spec).delete_model_version("iris-clf", str(version))
    changes = planned(spec)
    assert changes["model/iris-clf"]["verb"] == "re-register"
    assert changes["model/iris-clf"]["reasons"] == [f"version {version} was deleted from the registry"]
    assert changes["job/train"]["reasons"] == [f"iris-clf version {version} was deleted from the registry"]
    assert changes["endpoint/iris"]["action"] == "update"
    repaired(spec)
    registered = int(status(spec)["resources"]["model/iris-clf"]["outputs"]["version"])
    assert registered > version
    assert served_version(spec) == registered  # the declared alias moved to the new version, and the endpoint too


def test_an_emptied_mlflow_db_is_drift_never_in_sync(spec: Path) -> None:
    in_sync(spec)
    (spec / ".mlspec" / "mlflow.db").write_bytes(b"")
    changes = planned(spec)
    assert changes["job/train"]["action"] == "create"
    assert changes["job/train"]["reasons"] == ["mlflow.db was emptied"]
    assert changes["model/iris-clf"]["action"] == "create"
    assert changes["endpoint/iris"]["verb"] == "redeploy"
    assert not status(spec)["in_sync"]
    text = mlspec("status", str(spec)).stdout
    assert "In sync" not in text
    repaired(spec)
    assert served_version(spec) == 1  # a new store numbers from 1 again


def test_a_hung_gateway_never_stalls_a_plan(spec: Path) -> None:
    in_sync(spec)
    started = time.monotonic()
    mlspec("plan", str(spec))
    answered_s = time.monotonic() - started  # a plan on this machine now, its gateway answering
    workspace = str((spec / ".mlspec").resolve())
    gateway = next(pid for pid, process_id in workspace_processes(workspace).items() if process_id.endswith("/gateway"))
    os.kill(gateway, signal.SIGSTOP)
    try:
        started = time.monotonic()
        mlspec("plan", str(spec), timeout=30)
        # Within 10 s, or a few seconds more than the plan above where a loaded machine makes every plan slow: a
        # wait on the hung gateway (its control socket's 10 s, or for ever) would still exceed it.
        assert time.monotonic() - started < max(10, answered_s + 5)
    finally:
        os.kill(gateway, signal.SIGCONT)
    in_sync(spec)


def _stop_supervisor(workspace: str) -> None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"mlspec.backends.local.supervisor" in argv and workspace.encode() in argv:
            os.kill(int(entry.name), signal.SIGKILL)
            _wait_gone(int(entry.name))


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except OSError:
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} is still running")

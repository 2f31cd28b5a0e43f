"""Self-healing as users see it, on the iris model through the real CLI, supervisor and gateway: a hung replica
leaves the rotation within the readiness budget and is restarted; a model that fails its integrity check leaves
its deployment degraded in `status`, in the gateway's /health and in `up`'s exit code."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.state import StateStore
from tests.local.conftest import EXAMPLES, mlspec, status, wait_for

pytestmark = pytest.mark.e2e

READINESS = {"initial_delay": 20, "period": 0.25, "timeout": 0.5, "failure_threshold": 2}
LIVENESS = {"initial_delay": 5, "period": 0.5, "timeout": 0.5, "failure_threshold": 6}
BUDGET = READINESS["period"] * READINESS["failure_threshold"] + READINESS["timeout"]  # out of rotation by then
ENDPOINT = f"""
kind: Endpoint
name: iris
type: online
auth: none
deployments:
  blue:
    model: iris-clf@latest
    instance_count: 2
    probes:
      readiness: {json.dumps(READINESS)}
      liveness: {json.dumps(LIVENESS)}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The iris model served by two replicas with small probe settings (one training job, no other deployment)."""
    target = tmp_path_factory.mktemp("healing") / "iris"
    shutil.copytree(EXAMPLES / "iris", target, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    spec = target / "mlspec.yaml"
    text = spec.read_text()
    spec.write_text(text[:text.index("---\nkind: Job\nname: train-forest")] + "---" + ENDPOINT)
    mlspec("up", str(target), "--yes")
    yield target
    mlspec("down", str(target), "--yes", check=False)


def replicas(spec: Path) -> list[dict[str, Any]]:
    return sorted((p for p in status(spec)["processes"] if "/blue/" in p["id"] and p["desired"]),
                  key=lambda p: str(p["id"]))


def gateway_url(spec: Path) -> str:
    return str(status(spec)["resources"]["endpoint/iris"]["outputs"]["url"])


def health(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/health", timeout=2).json()  # type: ignore[no-any-return]



class LightLoad:
    """A few clients, each sending one request at a time; every answer is kept with when its request was sent."""

    def __init__(self, url: str, body: Any, clients: int = 4) -> None:
        self.url, self.body = url, body
        self.answers: list[tuple[float, int]] = []  # (sent at, status; 0 for no answer)
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(clients)]

    def client(self) -> None:
        with httpx.Client(timeout=15) as client:
            while not self.done.is_set():
                sent = time.monotonic()
                try:
                    code = client.post(f"{self.url}/invocations", json=self.body).status_code
                except httpx.HTTPError:
                    code = 0
                self.answers.append((sent, code))
                time.sleep(0.02)

    def __enter__(self) -> LightLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join(30)

    def since(self, moment: float) -> list[int]:
        return [code for sent, code in self.answers if sent >= moment]


def test_a_hung_replica_leaves_the_rotation_in_time_and_is_restarted(served: Path) -> None:
    url = gateway_url(served)
    body = json.loads((served / "request.json").read_text())
    wait_for(lambda: health(url)["deployments"]["blue"]["ready"] == 2, 30)
    time.sleep(READINESS["initial_delay"])  # the gateway probes a replica from initial_delay after it joined;
    # (a small initial_delay would also be the replicas' start deadline, too short on a busy machine)
    first, second = replicas(served)
    with LightLoad(url, body) as load:
        time.sleep(1)
        os.killpg(first["pid"], signal.SIGSTOP)  # alive, answering nothing (the server and the launcher above it)
        stopped = time.monotonic()
        wait_for(lambda: health(url)["deployments"]["blue"]["ready"] == 1, 5)
        assert time.monotonic() - stopped <= BUDGET + 0.5
        blue = health(url)
        assert blue["status"] == "ok" and blue["deployments"]["blue"]["state"] == "degraded"
        wait_for(lambda: replicas(served)[0]["pid"] not in (None, first["pid"]), 30)  # killed, started again
        restarted = time.monotonic()
        wait_for(lambda: health(url)["deployments"]["blue"]["state"] == "ready", 30)
        back = time.monotonic()
        time.sleep(1)
    after_budget = load.since(stopped + BUDGET + 0.5)
    assert after_budget and set(after_budget) == {200}, after_budget.count(200)
    during_hang = [code for sent, code in load.answers if stopped + BUDGET + 0.5 <= sent < restarted]
    assert len(during_hang) >= 10  # the other replica served meanwhile
    assert restarted - stopped >= LIVENESS["period"] * (LIVENESS["failure_threshold"] - 1)  # liveness, not earlier
    assert len([code for sent, code in load.answers if sent >= back]) >= 5
    now = replicas(served)
    assert now[0]["restarts"] == 1 and now[0]["state"] == "running" and now[1]["pid"] == second["pid"]
    assert status(served)["in_sync"] is True
    store = StateStore(WorkspacePaths(served / ".mlspec").state_db)
    try:
        assert any("failed its liveness probe" in message for _, _, message in store.events("endpoint/iris"))
    finally:
        store.close()


def test_a_model_that_fails_its_integrity_check_leaves_its_deployment_degraded(served: Path) -> None:
    url = gateway_url(served)
    run_id = status(served)["resources"]["job/train"]["outputs"]["run_id"]
    model = served / ".mlspec" / "artifacts" / run_id / "artifacts" / "models" / "model" / "model.pkl"
    with model.open("ab") as handle:
        handle.write(b"changed")
    for replica in replicas(served):
        os.killpg(replica["pid"], signal.SIGKILL)  # the supervisor starts them again, from the changed files
    wait_for(lambda: all(r["streak"] >= 3 for r in replicas(served)), 60)

    shown = status(served)
    assert shown["in_sync"] is False and shown["resources"]["endpoint/iris"]["status"] == "degraded"
    assert [(d["resource"], d["deployment"]) for d in shown["degraded"]] == [("endpoint/iris", "blue")]
    assert "does not match the registered digest" in shown["degraded"][0]["reason"]
    text = mlspec("status", str(served)).stdout
    assert "In sync" not in text and "deployment 'blue' is degraded" in text

    up = mlspec("up", str(served), "--yes", check=False)
    assert up.returncode != 0
    assert "deployment 'blue' is degraded" in up.stderr and "does not match the registered digest" in up.stderr

    wait_for(lambda: health(url)["status"] == "degraded", 10)
    assert health(url)["deployments"]["blue"]["state"] == "unavailable"

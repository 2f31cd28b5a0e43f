"""A replica leaving the rotation drops no request, with real processes: scoring servers told to stop (SIGTERM)
fail their readiness and mark their answers for their notice period while they still answer, then finish what they
hold and exit; the gateway in front stops sending to them at their first marked answer. And a gateway finds a
deployment's replicas by name, each joining once its readiness probe passes."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from test_serving_support import MODEL, shared_store, start, start_scoring

from tests.runtime.test_gateway_limits import fake_replica

pytestmark = pytest.mark.e2e
BODY = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
NOTICE_S = 2.0
# The gateway's probe alone would take 30 periods of 10 s to give up on a replica: only the replica's own word
# (its marked answers, or a draining /health) can take it out of rotation within the notice.
READINESS = {"initial_delay": 0, "period": 10, "timeout": 2, "failure_threshold": 30, "success_threshold": 1}


def _load(url: str, stop: threading.Event, statuses: Counter[int], failures: list[str]) -> None:
    with httpx.Client(timeout=30) as client:
        for _ in range(5000):  # bounded by count as well as by the test's stop
            if stop.is_set():
                return
            try:
                answer = client.post(f"{url}/invocations", json=BODY)
                status, text = answer.status_code, answer.text
            except httpx.TransportError as error:
                status, text = 0, repr(error)
            statuses[status] += 1
            if status != 200:
                failures.append(f"{status}: {text[:200]}")


def test_a_replica_told_to_stop_drains_with_no_failed_request(tmp_path_factory: pytest.TempPathFactory,
                                                              tmp_path: Path) -> None:
    store = shared_store(tmp_path_factory)
    replicas = [start_scoring(store, f"models:/{MODEL}/1", tmp_path / f"r{i}.log", "--name", "blue",
                              "--drain-notice", str(NOTICE_S)) for i in range(2)]
    config = tmp_path / "gateway.json"
    gateway = None
    try:
        for replica in replicas:
            replica.wait_ready()
        config.write_text(json.dumps({"endpoint": "iris", "auth": "none", "deployments": {"blue": {
            "weight": 100, "replicas": [r.url for r in replicas], "readiness": READINESS}}}))
        gateway = start("mlspec.runtime.gateway", ["--config", str(config)], tmp_path / "gateway.log")
        gateway.wait_ready(30)
        stop, statuses, failures = threading.Event(), Counter[int](), []
        clients = [threading.Thread(target=_load, args=(gateway.url, stop, statuses, failures), daemon=True)
                   for _ in range(3)]
        for thread in clients:
            thread.start()
        time.sleep(0.5)
        leaving = replicas[0]
        leaving.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # Within its notice it still answers, saying it is leaving, and its readiness fails.
        health = httpx.get(f"{leaving.url}/health", timeout=5)
        assert health.status_code == 503 and health.json() == {"status": "draining"}
        answer = httpx.post(f"{leaving.url}/invocations", json=BODY, timeout=5)
        assert answer.status_code == 200 and answer.headers["x-mlspec-draining"] == "1"
        assert leaving.wait_exit(NOTICE_S + 15) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{leaving.url}/health", timeout=2)
        time.sleep(0.5)  # traffic goes on to the other replica alone
        stop.set()
        for thread in clients:
            thread.join(30)
        assert sum(statuses.values()) > 50 and not failures, (statuses, failures[:5])
        health = httpx.get(f"{gateway.url}/health", timeout=5).json()["deployments"]["blue"]
        assert health["ready"] == 1 and health["unready"] == 1
    finally:
        for server in [*replicas, *([gateway] if gateway else [])]:
            server.stop()


def test_replicas_found_by_name_join_once_ready(tmp_path: Path) -> None:
    replica = fake_replica(tmp_path / "replica", delay=0.0)
    port = replica.url.rsplit(":", 1)[1]
    config = tmp_path / "gateway.json"
    config.write_text(json.dumps({"endpoint": "iris", "auth": "none", "request_timeout": 1, "deployments": {
        "blue": {"weight": 100, "discover": f"http://localhost:{port}", "readiness": READINESS},
        "green": {"weight": 0, "discover": "http://no-replica-holds-this.invalid:8080", "readiness": READINESS}}}))
    gateway = start("mlspec.runtime.gateway", ["--config", str(config)], tmp_path / "gateway.log")
    try:
        gateway.wait_ready(30)
        # The first request may come before the name is resolved: it waits for the replica, then is answered.
        answer = httpx.post(f"{gateway.url}/invocations", json=BODY, timeout=10)
        assert answer.status_code == 200 and answer.json()["port"] == int(port)
        blue = httpx.get(f"{gateway.url}/health", timeout=5).json()["deployments"]["blue"]
        assert blue["ready"] == 1  # 127.0.0.1 (an IPv6 address of localhost, where there is one, refuses)
        # A name no container holds: no replica; a request waits out its time for one, then 503.
        pinned = httpx.post(f"{gateway.url}/invocations", json=BODY, headers={"x-mlspec-deployment": "green"},
                            timeout=10)
        assert pinned.status_code == 503
        assert httpx.get(f"{gateway.url}/health", timeout=5).json()["deployments"]["green"]["replicas"] == 0
    finally:
        gateway.stop()
        replica.stop()

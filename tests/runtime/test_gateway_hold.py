"""Scaled to zero: the gateway holds a request until a replica is ready (or its timeout), and counts it as demand."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_gateway_limits import fake_replica
from test_serving_support import Server, start

from mlspec.backends.local.gateway_control import configure

pytestmark = pytest.mark.e2e


def document(replicas: list[str], timeout: float = 10.0, hold: bool = True) -> dict[str, Any]:
    return {"endpoint": "zero", "auth": "none", "request_timeout": timeout, "deployments": {
        "blue": {"weight": 100, "replicas": replicas, "hold": hold,
                 "readiness": {"initial_delay": 0, "period": 0.2, "timeout": 1, "failure_threshold": 1,
                               "success_threshold": 1}}}}


def write(control: Path, replicas: list[str], timeout: float = 10.0, hold: bool = True) -> None:
    """The new replica set, through the control channel, as the scaler pushes it (acknowledged once in use)."""
    configure(control, document(replicas, timeout, hold))


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    config = tmp_path / "gateway.json"
    config.write_text(json.dumps(document([])))
    private = tmp_path / "control"
    private.mkdir(mode=0o700)
    control = private / "gateway.sock"
    served = start("mlspec.runtime.gateway", ["--config", str(config), "--control", str(control)],
                   tmp_path / "gateway.log")
    try:
        served.wait_ready(30)
        yield served, control
    finally:
        served.stop()


def post_in_background(url: str, answers: list[Any]) -> threading.Thread:
    def send() -> None:
        started = time.monotonic()
        answer = httpx.post(f"{url}/invocations", json={"instances": [[1]]}, timeout=30)
        answers.append((answer, time.monotonic() - started))

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def held(url: str) -> int:
    return int(httpx.get(f"{url}/health").json()["deployments"]["blue"]["held"])


def test_first_request_waits_for_the_first_replica(gateway: tuple[Server, Path], tmp_path: Path) -> None:
    served, config = gateway
    answers: list[Any] = []
    threads = [post_in_background(served.url, answers) for _ in range(3)]
    deadline = time.monotonic() + 10
    while held(served.url) < 3:  # the demand signal an autoscaler reads
        assert time.monotonic() < deadline and not answers, answers
        time.sleep(0.05)
    time.sleep(1.0)
    assert not answers  # still held, not refused
    replica = fake_replica(tmp_path / "r0", delay=0.0)
    try:
        write(config, [replica.url])  # the scaler's new replica set
        for thread in threads:
            thread.join(20)
        assert [answer.status_code for answer, _ in answers] == [200] * 3, [a.text for a, _ in answers]
        assert all(took > 1.0 for _, took in answers)
        assert held(served.url) == 0
    finally:
        replica.stop()


def test_a_held_request_times_out_with_a_503(gateway: tuple[Server, Path]) -> None:
    served, config = gateway
    write(config, [], timeout=1.0)
    started = time.monotonic()
    answer = httpx.post(f"{served.url}/invocations", json={"instances": [[1]]}, timeout=30)
    assert answer.status_code == 503 and "scaling up" in answer.json()["error"], answer.text
    assert 0.9 < time.monotonic() - started < 5 and answer.headers["retry-after"] == "1"
    assert held(served.url) == 0


def test_a_replica_that_becomes_ready_takes_the_held_requests(gateway: tuple[Server, Path], tmp_path: Path) -> None:
    served, config = gateway
    replica = fake_replica(tmp_path / "r1", delay=0.0)
    (tmp_path / "r1" / "unready").touch()
    try:
        write(config, [replica.url])
        deadline = time.monotonic() + 10
        while httpx.get(f"{served.url}/health").json()["deployments"]["blue"]["unready"] != 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        answers: list[Any] = []
        thread = post_in_background(served.url, answers)
        time.sleep(1.0)
        assert not answers and held(served.url) == 1
        (tmp_path / "r1" / "unready").unlink()
        thread.join(20)
        assert answers and answers[0][0].status_code == 200, answers
    finally:
        replica.stop()


def test_without_hold_no_replica_is_refused_at_once(gateway: tuple[Server, Path]) -> None:
    served, config = gateway
    write(config, [], hold=False)
    answer = httpx.post(f"{served.url}/invocations", json={"instances": [[1]]}, timeout=30)
    assert answer.status_code == 503

"""The gateway's per-replica concurrency limit, its bounded queue and readiness probes, against slow real servers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_serving_support import Server, free_port, start

pytestmark = pytest.mark.e2e
FAKE = Path(__file__).with_name("fake_replica.py")


def fake_replica(state: Path, delay: float) -> Server:
    state.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = state / "replica.log"
    with log.open("wb") as handle:
        process = subprocess.Popen([sys.executable, str(FAKE), "--port", str(port), "--delay", str(delay),
                                    "--state", str(state)], stdout=handle, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    server.wait_ready(20)
    return server


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[Server]]:
    servers = [fake_replica(tmp_path / f"r{index}", delay=1.0) for index in range(2)]
    yield servers
    for server in servers:
        server.stop()


def start_gateway(tmp_path: Path, replicas: list[Server], **deployment: Any) -> Server:
    config = tmp_path / "gateway.json"
    config.write_text(json.dumps({"endpoint": "slow", "auth": "none", "deployments": {
        "blue": {"weight": 100, "replicas": [r.url for r in replicas], **deployment}}}))
    gateway = start("mlspec.runtime.gateway", ["--config", str(config)], tmp_path / "gateway.log")
    gateway.wait_ready(30)
    return gateway


async def _burst(url: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=count)) as client:
        return await asyncio.gather(*(client.post(f"{url}/invocations", json={"instances": [[1]]})
                                      for _ in range(count)))


def burst(url: str, count: int) -> tuple[list[httpx.Response], float]:
    started = time.monotonic()
    answers = asyncio.run(_burst(url, count))
    return answers, time.monotonic() - started


def most_in_flight(replicas: list[Server]) -> list[int]:
    return [httpx.get(f"{r.url}/stats").json()["most"] for r in replicas]


def test_requests_over_the_limit_queue_then_get_429(tmp_path: Path, replicas: list[Server]) -> None:
    """2 replicas x 2 slots: of 7 concurrent requests (each 1 s), 4 are served, 3 wait 0.5 s and get a 429."""
    gateway = start_gateway(tmp_path, replicas, max_concurrent=2, max_queue_wait=0.5)
    try:
        answers, _ = burst(gateway.url, 7)
        statuses = Counter(a.status_code for a in answers)
        assert statuses == Counter({200: 4, 429: 3}), [a.text for a in answers]
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.headers["retry-after"] == "1"
        assert "limit of 2 concurrent requests per replica" in refused.json()["error"]
        assert "max_queue_wait" in refused.json()["error"]
        assert most_in_flight(replicas) == [2, 2]  # no replica ever held more than its limit
        metrics = httpx.get(f"{gateway.url}/metrics").text
        assert 'mlspec_gateway_requests_total{deployment="blue",status="429"} 3' in metrics
    finally:
        gateway.stop()


def test_queued_requests_are_served_when_a_slot_frees_within_max_queue_wait(tmp_path: Path,
                                                                            replicas: list[Server]) -> None:
    """With a queue wait longer than a request, 4 slots serve 10 requests in three waves, none refused."""
    gateway = start_gateway(tmp_path, replicas, max_concurrent=2, max_queue_wait=3)
    try:
        answers, took = burst(gateway.url, 10)
        assert [a.status_code for a in answers] == [200] * 10, [a.text for a in answers]
        assert 2.9 < took < 6, took  # three waves of 1 s: the queue, not more concurrency, served the rest
        assert most_in_flight(replicas) == [2, 2]
        assert min(Counter(a.json()["port"] for a in answers).values()) >= 4  # two waves each, the third split
    finally:
        gateway.stop()


def test_no_queue_wait_refuses_at_once(tmp_path: Path, replicas: list[Server]) -> None:
    gateway = start_gateway(tmp_path, replicas[:1], max_concurrent=1, max_queue_wait=0)
    try:
        answers, _ = burst(gateway.url, 3)
        assert Counter(a.status_code for a in answers) == Counter({200: 1, 429: 2})
        assert all(a.elapsed.total_seconds() < 0.5 for a in answers if a.status_code == 429)
    finally:
        gateway.stop()


def test_readiness_takes_a_replica_out_and_back_after_success_threshold(tmp_path: Path) -> None:
    """A replica whose /health fails `failure_threshold` probes in a row gets no traffic; it returns only after
    `success_threshold` successes in a row."""
    fast = [fake_replica(tmp_path / f"f{index}", delay=0.0) for index in range(2)]
    probe = {"initial_delay": 0, "period": 0.2, "timeout": 1, "failure_threshold": 2, "success_threshold": 5}
    gateway = start_gateway(tmp_path, fast, readiness=probe)
    unready = tmp_path / "f1" / "unready"

    def ports(count: int = 8) -> Counter[int]:
        return Counter(httpx.post(f"{gateway.url}/invocations", json={}).json()["port"] for _ in range(count))

    def health() -> dict[str, Any]:
        return httpx.get(f"{gateway.url}/health").json()["deployments"]["blue"]  # type: ignore[no-any-return]

    def wait_unready(count: int, timeout: float) -> float:
        started = time.monotonic()
        while health()["unready"] != count:
            assert time.monotonic() - started < timeout, health()
            time.sleep(0.05)
        return time.monotonic() - started

    try:
        assert len(ports()) == 2
        unready.touch()
        wait_unready(1, 5)
        port_of_f1 = int(fast[1].url.rsplit(":", 1)[1])
        assert port_of_f1 not in ports()
        unready.unlink()
        back = wait_unready(0, 5)
        assert back >= 0.6  # five successes 0.2 s apart, not the first one
        assert len(ports()) == 2
    finally:
        gateway.stop()
        for server in fast:
            server.stop()

"""The gateway's /health per deployment: ready, degraded (some replicas not ready), unavailable (none)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.runtime.test_gateway_limits import fake_replica, start_gateway

pytestmark = pytest.mark.e2e


def test_health_says_degraded_when_a_deployment_has_no_ready_replica(tmp_path: Path) -> None:
    replicas = [fake_replica(tmp_path / f"r{index}", delay=0.0) for index in range(2)]
    probe = {"initial_delay": 0, "period": 0.1, "timeout": 1, "failure_threshold": 1, "success_threshold": 1}
    gateway = start_gateway(tmp_path, replicas, readiness=probe)

    def health() -> dict[str, Any]:
        return httpx.get(f"{gateway.url}/health").json()  # type: ignore[no-any-return]

    def settles(state: str) -> dict[str, Any]:
        deadline = time.monotonic() + 5
        while (answer := health())["deployments"]["blue"]["state"] != state:
            assert time.monotonic() < deadline, answer
            time.sleep(0.05)
        return answer

    try:
        answer = settles("ready")
        assert answer["status"] == "ok" and answer["deployments"]["blue"]["ready"] == 2
        (tmp_path / "r0" / "unready").touch()
        answer = settles("degraded")
        assert answer["status"] == "ok" and answer["deployments"]["blue"]["ready"] == 1  # still serving
        (tmp_path / "r1" / "unready").touch()
        answer = settles("unavailable")
        assert answer["status"] == "degraded" and answer["deployments"]["blue"]["unready"] == 2
        (tmp_path / "r0" / "unready").unlink()
        assert settles("degraded")["status"] == "ok"
    finally:
        gateway.stop()
        for server in replicas:
            server.stop()

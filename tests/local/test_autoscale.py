"""Autoscaling on the local engine: from zero on the first request (held, answered), up under load, back down."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.local.conftest import mlspec, status
from tests.local.test_rollouts import Load, edit

pytestmark = pytest.mark.e2e
AUTOSCALE = ("    autoscale: {min_instances: 0, max_instances: 2, target_concurrency: 2, window: 2s, "
             "scale_down_delay: 3s}")


def scaled(iris: Path) -> dict[str, Any]:
    try:
        return json.loads((iris / ".mlspec" / "autoscale" / "iris.status.json").read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return {}


def wait_for(iris: Path, replicas: int, seconds: float) -> float:
    started = time.monotonic()
    while scaled(iris).get("blue", {}).get("current") != replicas:
        assert time.monotonic() - started < seconds, f"blue never reached {replicas} replica(s): {scaled(iris)}"
        time.sleep(0.1)
    return time.monotonic() - started


def test_scale_from_zero_up_under_load_and_back_down(iris: Path) -> None:
    spec = iris / "mlspec.yaml"
    edit(spec, "    model: iris-clf@latest\n    instance_count: 1", "    model: iris-clf@latest\n" + AUTOSCALE)
    mlspec("up", str(iris), "--yes")
    state = status(iris)
    outputs = state["resources"]["endpoint/iris"]["outputs"]
    assert outputs["deployments"]["blue"]["replicas"] == []  # min_instances 0: nothing runs until asked
    assert any(p["id"] == "endpoint/iris/autoscaler" for p in state["processes"])
    key = json.loads(mlspec("endpoint", "keys", "iris", str(iris), "--json").stdout)["primary"]

    body = json.dumps({"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": [[5.1, 3.5, 1.4, 0.2]]}})
    request = urllib.request.Request(f"{outputs['url']}/invocations", body.encode(), {
        "content-type": "application/json", "authorization": f"Bearer {key}", "x-mlspec-deployment": "blue"})
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=60) as answer:  # held at the gateway until a replica is ready
        assert answer.status == 200 and json.loads(answer.read())["predictions"] == [0]
    first_answer = time.monotonic() - started
    assert scaled(iris)["blue"]["current"] == 1

    with Load(outputs["port"], key) as load:
        wait_for(iris, 2, 60)
        mlspec("up", str(iris), "--yes", "--lock-timeout", "30")  # keeps what the scaler added (within [min, max])
        assert scaled(iris)["blue"]["current"] == 2
        assert len(status(iris)["autoscale"]["iris"]) == 1
    assert load.failures == [] and load.ok > 0
    shown = mlspec("status", str(iris)).stdout
    assert "blue: " in shown and "autoscale" in shown
    wait_for(iris, 0, 60)  # idle: window + scale_down_delay, then back to min_instances
    print(f"first answer from zero in {first_answer:.2f}s")

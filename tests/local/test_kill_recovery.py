"""`kill -9` of `mlspec up` at several points, then `up` again: it converges, no orphan, no lost model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlspec.backends.local.processes import workspace_processes
from tests.local.conftest import mlspec, status

pytestmark = pytest.mark.e2e

# Lines of `mlspec up`'s output after which it is killed: mid-training, between steps, while serving starts.
KILL_POINTS = ["[train] ", "✓ model/iris-clf", "starting 1 replica(s) of iris/green"]


def up_until(spec: Path, marker: str, timeout: float = 240) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mlspec.cli.main", "up", str(spec), "--yes"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            proc.send_signal(signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "".join(seen)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"up finished before '{marker}':\n{''.join(seen)}"


@pytest.mark.parametrize("marker", KILL_POINTS)
def test_killed_up_converges(iris: Path, marker: str) -> None:
    up_until(iris, marker)
    mlspec("up", str(iris), "--yes")
    state = status(iris)
    assert state["in_sync"]
    assert all(r["status"] == "ready" for r in state["resources"].values())
    desired = {p["id"] for p in state["processes"] if p["desired"]}
    live = list(workspace_processes(str((iris / ".mlspec").resolve())).values())
    running = set(live)
    assert running == desired, f"orphans: {running - desired}, missing: {desired - running}"
    assert len(live) == len(running), f"two processes under one id: {sorted(live)}"  # the older one is an orphan
    models = {m["name"]: m["versions"] for m in json.loads(mlspec("models", str(iris), "--json").stdout)}
    # No model lost and none registered twice for the same training: exactly one version each.
    assert [v["version"] for v in models["iris-clf"]] == [1]
    assert [v["version"] for v in models["iris-forest"]] == [1]
    invoked = mlspec("endpoint", "invoke", "iris", "--data", str(iris / "request.json"), str(iris))
    assert json.loads(invoked.stdout)["predictions"] == [0, 2]
    mlspec("down", str(iris), "--yes")
    deadline = time.monotonic() + 30
    while (left := workspace_processes(str((iris / ".mlspec").resolve()))) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes outlived `down`: {left}"

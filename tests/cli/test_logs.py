"""`mlspec logs NAME -f` on an endpoint: every replica and the gateway at once, prefixed, new replicas joining."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mlspec.backends.local.state import ProcessRow, StateStore
from mlspec.plan import Record

ROOT = Path(__file__).resolve().parents[2]


def _replica(store: StateStore, logs: Path, name: str) -> Path:
    log = logs / f"iris-{name}.log"
    process_id = "endpoint/iris/gateway" if name == "gateway" else f"endpoint/iris/{name[:-2]}/g1/{name[-1]}"
    store.want_process(ProcessRow(process_id, "endpoint/iris", ["true"], {}, str(logs), str(log), None))
    return log


def _wait_for(out: list[str], text: str, process: subprocess.Popen[str], timeout: float = 30) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while not any(text in line for line in out):
        assert time.monotonic() < deadline, f"{text!r} not shown; got {out}"
        out.append(process.stdout.readline())


def test_follow_shows_every_replica_and_the_gateway_and_picks_up_new_ones(tmp_path: Path) -> None:
    spec = tmp_path / "iris"
    shutil.copytree(ROOT / "examples" / "iris", spec, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    logs = spec / ".mlspec" / "logs"
    logs.mkdir(parents=True)
    store = StateStore(spec / ".mlspec" / "state.db")
    store.put(Record("endpoint/iris", "Endpoint", "0" * 64, {}, {}, {}, {"url": "http://127.0.0.1:1"}, "ready"))
    blue, gateway = _replica(store, logs, "blue-0"), _replica(store, logs, "gateway")
    blue.write_text("loading model\nready\n")
    gateway.write_text("listening\n")
    process = subprocess.Popen([sys.executable, "-m", "mlspec.cli.main", "logs", "iris", "-f", str(spec)],
                               cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, bufsize=1)
    out: list[str] = []
    try:
        _wait_for(out, "listening", process)
        _wait_for(out, "ready", process)
        with blue.open("a") as handle:
            handle.write("POST /invocations 200\n")
        _wait_for(out, "POST /invocations 200", process)
        green = _replica(store, logs, "green-0")  # a rollout starts a new deployment's replica
        green.write_text("green loading\n")
        _wait_for(out, "green loading", process)
    finally:
        process.terminate()
        process.wait(timeout=10)
        store.close()
    shown = [line.rstrip("\n") for line in out if line.strip()]
    assert "blue-0  | loading model" in shown and "blue-0  | ready" in shown, shown
    assert "gateway | listening" in shown and "blue-0  | POST /invocations 200" in shown, shown
    assert any(line.startswith("green-0") and line.endswith("| green loading") for line in shown), shown

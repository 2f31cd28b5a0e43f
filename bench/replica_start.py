"""Replica start, spawn to ready (/health 200), for the registered iris model: mlspec's server from cold, a replica
forked by a warm zygote, and `mlflow models serve` (--env-manager local); the median of N beside the targets, and
the floor of any cold start: a fresh interpreter that only loads the model file (joblib) and exits.

    .venv/bin/python bench/replica_start.py [--repeats 5] [--no-mlflow]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _serving_common import PYTHON, REPO, commands, register_iris

from mlspec.runtime.serving.zygote import fork_replica

COLD_TARGET_S = 1.5
FORK_TARGET_S = 0.3
POLL_S = 0.005


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(port: int, path: str, alive: Callable[[], bool], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if not alive():
            sys.exit(f"the server on port {port} exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(POLL_S)
    sys.exit(f"the server on port {port} did not become ready:\n{log.read_text()}")


def environment() -> dict[str, str]:
    path = os.pathsep.join([str(Path(PYTHON).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PYTHONPATH": str(REPO), "PATH": path}


def spawned(argv: list[str], port: int, health: str, log: Path) -> float:
    with log.open("wb") as handle:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=environment(),
                                   start_new_session=True)
        wait_ready(port, health, lambda: process.poll() is None, log)
        took = time.perf_counter() - started
    os.killpg(process.pid, 15)
    process.wait(30)
    return took


def floor(model_file: Path) -> float:
    """Spawn to exit of a fresh interpreter that loads the model and does nothing else: what scikit-learn's own
    import and the unpickling cost, before any server exists."""
    started = time.perf_counter()
    subprocess.run([PYTHON, "-P", "-c", f"import joblib; joblib.load({str(model_file)!r})"], check=True,
                   env=environment())
    return time.perf_counter() - started


def forked(zygote: Path, argv: list[str], port: int, log: Path) -> float:
    started = time.perf_counter()
    pid = fork_replica(zygote, argv, {}, log=str(log))
    wait_ready(port, "/health", lambda: Path(f"/proc/{pid}").exists(), log)
    took = time.perf_counter() - started
    os.killpg(pid, 15)
    while Path(f"/proc/{pid}").exists():
        time.sleep(0.01)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-mlflow", action="store_true", help="leave out `mlflow models serve` (slow)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlspec-bench-start-") as folder:
        root = Path(folder)
        registered = register_iris(root)
        zygote_socket = root / "zygote.sock"
        zygote_log = root / "zygote.log"
        with zygote_log.open("wb") as handle:
            zygote = subprocess.Popen([PYTHON, "-m", "mlspec.runtime.serving.zygote", "--socket", str(zygote_socket)],
                                      stdout=handle, stderr=subprocess.STDOUT, env=environment(),
                                      start_new_session=True)
        results: dict[str, list[float]] = {"floor": [], "cold": [], "fork": [], "mlflow": []}
        try:
            while not zygote_socket.exists():
                if zygote.poll() is not None:
                    sys.exit(zygote_log.read_text())
                time.sleep(0.05)
            for _ in range(args.repeats):
                results["floor"].append(floor(root / "iris.joblib"))
                port = free_port()
                cold = commands(registered, {"mlspec": port}, root / "unused.json")["mlspec"]
                results["cold"].append(spawned(cold, port, "/health", root / "cold.log"))
                port = free_port()
                results["fork"].append(forked(zygote_socket, [*cold[cold.index("--model-uri"):-1], str(port)], port,
                                              root / "fork.log"))
                if not args.no_mlflow:
                    port = free_port()
                    served = commands(registered, {"mlflow": port}, root / "unused.json")["mlflow"]
                    results["mlflow"].append(spawned(served, port, "/ping", root / "mlflow.log"))
        finally:
            os.killpg(zygote.pid, 15)
            zygote.wait(30)
    print(f"replica spawn -> ready, iris (sklearn), median of {args.repeats} (min-max)")
    for name, label, target in (("floor", "load-only interpreter", "(the floor of a cold start)"),
                                ("cold", "mlspec cold start", f"<= {COLD_TARGET_S} s"),
                                ("fork", "mlspec warm fork", f"<= {FORK_TARGET_S} s"),
                                ("mlflow", "mlflow models serve", "")):
        times = results[name]
        if times:
            print(f"  {label:<22} {statistics.median(times):6.3f} s  ({min(times):.3f}-{max(times):.3f})  "
                  f"target {target or '-'}")


if __name__ == "__main__":
    main()

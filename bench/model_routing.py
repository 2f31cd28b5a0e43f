"""Routing by model: Open Inference Protocol calls through the gateway in front of two deployments of two models.

Run: .venv/bin/python bench/model_routing.py [--requests 4000] [--concurrency 16]

Deployment blue serves iris-clf with 90% of the traffic, green serves iris-other with 10% (two scoring servers,
the same iris model registered under two names). Keep-alive clients call `/v2/models/iris-clf/infer`,
`/v2/models/iris-other/infer` and `/invocations` through the gateway. By traffic weight alone, 10% of iris-clf's
calls and 90% of iris-other's would reach the replica that does not serve their model (a 404).
Target: 0 failed calls of all sent on every path. `/invocations` (weighted, MLflow's format) is printed beside
them for reference: its latency differs by the replicas' parsing of the other format too, not by routing alone.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path

from _serving_common import (
    IRIS_BODY,
    KEY,
    _register,
    commands,
    exchange,
    free_port,
    launch,
    register_iris,
    stop,
    wait_ready,
)

V2_BODY = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                                  "data": [5.1, 3.5, 1.4, 0.2]}]}).encode()
PROBE = {"initial_delay": 0, "period": 10, "timeout": 2, "failure_threshold": 3, "success_threshold": 1}


async def _client(port: int, request: bytes, count: int, latencies: list[float], failed: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(count):
        started = time.perf_counter()
        head, _ = await exchange(reader, writer, request)
        latencies.append(time.perf_counter() - started)
        if not head.startswith(b"HTTP/1.1 200"):
            failed.append(int(head[9:12]))
    writer.close()


async def load(port: int, path: str, body: bytes, concurrency: int, count: int) -> tuple[float, list[float], list[int]]:
    request = (f"POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
               f"authorization: Bearer {KEY}\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body
    latencies: list[float] = []
    failed: list[int] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, request, count // concurrency, latencies, failed)
                           for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - started), latencies, failed


async def measure(port: int, concurrency: int, total: int, rounds: int) -> None:
    paths = {"/v2/models/iris-clf/infer": V2_BODY, "/v2/models/iris-other/infer": V2_BODY,
             "/invocations": IRIS_BODY}
    for path, body in paths.items():
        await load(port, path, body, concurrency, 200)  # warm-up
    rates: dict[str, list[float]] = {path: [] for path in paths}
    latencies: dict[str, list[float]] = {path: [] for path in paths}
    failures: dict[str, list[int]] = {path: [] for path in paths}
    for _ in range(rounds):  # rounds alternate between paths, so background load hits them alike
        for path, body in paths.items():
            rate, seen, failed = await load(port, path, body, concurrency, max(concurrency, total // rounds))
            rates[path].append(rate)
            latencies[path] += seen
            failures[path] += failed
    print(f"\n{concurrency} concurrent client(s) through the gateway")
    print(f"{'path':<30} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'sent':>6} {'failed':>7}   target")
    for path in paths:
        ordered = sorted(latencies[path])
        print(f"{path:<30} {statistics.median(rates[path]):>8.0f} {ordered[len(ordered) // 2] * 1e3:>8.2f} "
              f"{ordered[int(len(ordered) * 0.99)] * 1e3:>8.2f} {len(ordered):>6} {len(failures[path]):>7}   0 failed")
    total = sum(len(f) for f in failures.values())
    print(f"failed {total} of {sum(len(seen) for seen in latencies.values())} sent (target 0)")


def write_config(path: Path, blue: int, green: int) -> None:
    replica = {"max_concurrent": 64, "max_queue_wait": 0.5, "readiness": PROBE}
    path.write_text(json.dumps({
        "endpoint": "bench", "auth": "key", "key_hashes": [hashlib.sha256(KEY.encode()).hexdigest()],
        "deployments": {
            "blue": {"weight": 90, "replicas": [f"http://127.0.0.1:{blue}"], **replica,
                     "model": {"name": "iris-clf", "version": "1"}},
            "green": {"weight": 10, "replicas": [f"http://127.0.0.1:{green}"], **replica,
                      "model": {"name": "iris-other", "version": "1"}}}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000, help="per path (default 4000)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    import uvloop

    with tempfile.TemporaryDirectory(prefix="mlspec-bench-") as tmp:
        root = Path(tmp)
        clf = register_iris(root)
        other = _register(root, "iris-other", root / "iris.joblib", "sklearn")
        ports = {"blue": free_port(), "green": free_port(), "gateway": free_port()}
        write_config(root / "gateway.json", ports["blue"], ports["green"])
        argv = {"blue": commands(clf, {"mlspec": ports["blue"]}, root / "gateway.json")["mlspec"],
                "green": commands(other, {"mlspec": ports["green"]}, root / "gateway.json")["mlspec"],
                "gateway": commands(clf, ports, root / "gateway.json")["gateway"]}
        processes = {}
        try:
            for group in (("blue", "green"), ("gateway",)):  # the gateway once its replicas are ready, as the engine
                for name in group:
                    processes[name] = launch(argv[name], root / f"{name}.log", clf.tracking_uri)
                for name in group:
                    wait_ready(f"http://127.0.0.1:{ports[name]}", processes[name], root / f"{name}.log")
            uvloop.run(measure(ports["gateway"], args.concurrency, args.requests, args.rounds))
        finally:
            stop(processes)


if __name__ == "__main__":
    main()

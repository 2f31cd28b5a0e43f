"""Quick benchmark: single-row requests to one sklearn model, directly, through the gateway, and against a floor.

Run: .venv/bin/python bench/serving_quick.py [--requests 5000] [--concurrency 1 16] [--mlflow]

Targets, all on 127.0.0.1 and started as real processes from one freshly registered iris model:
  floor    a bare ASGI + numpy scorer (uvicorn, orjson, model.predict inline): the reference of DESIGN.md §6
  mlspec   mlspec's scoring server (`python -m mlspec.runtime.serving`)
  gateway  mlspec's gateway (key auth) in front of that same server
  mlflow   `mlflow models serve --env-manager local` (only with --mlflow: slow to start, slow to serve)
The load generator is asyncio with raw HTTP/1.1 keep-alive connections (one per concurrent client): httpx costs
more per request than the servers measured here, so it would measure itself. Rounds alternate between targets so
that background load on the machine hits them alike; figures are over all rounds. `bench/serving.py` is the
benchmark the targets are judged by (wrk, pinned cores); this one needs nothing outside the virtualenv.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from _serving_common import (
    IRIS_BODY,
    KEY,
    commands,
    exchange,
    free_port,
    health_path,
    launch,
    register_iris,
    stop,
    wait_ready,
    write_gateway_config,
)


async def _client(port: int, request: bytes, count: int, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(count):
        started = time.perf_counter()
        head, body = await exchange(reader, writer, request)
        latencies.append(time.perf_counter() - started)
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"port {port} answered {head.decode(errors='replace')}{body.decode(errors='replace')}")
    writer.close()


async def load(port: int, concurrency: int, count: int, path: str = "/invocations") -> tuple[float, list[float]]:
    """Requests per second and latencies of `count` requests from `concurrency` keep-alive clients."""
    request = (f"POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
               f"authorization: Bearer {KEY}\r\ncontent-length: {len(IRIS_BODY)}\r\n\r\n").encode() + IRIS_BODY
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, request, count // concurrency, latencies) for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - started), latencies


async def measure(ports: dict[str, int], concurrency: int, total: int, rounds: int) -> dict[str, dict[str, float]]:
    throughput: dict[str, list[float]] = {name: [] for name in ports}
    latencies: dict[str, list[float]] = {name: [] for name in ports}
    for port in ports.values():
        await load(port, concurrency, 300)  # warm-up: connections, caches, the scorer's estimate
    for _ in range(rounds):
        for name, port in ports.items():
            rate, seen = await load(port, concurrency, max(concurrency, total // rounds))
            throughput[name].append(rate)
            latencies[name] += seen
    results = {}
    for name in ports:
        ordered = sorted(latencies[name])
        results[name] = {"rps": statistics.median(throughput[name]), "p50": ordered[len(ordered) // 2] * 1e3,
                         "p99": ordered[int(len(ordered) * 0.99)] * 1e3, "n": len(ordered)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000, help="per target and concurrency (default 5000)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mlflow", action="store_true", help="also measure `mlflow models serve`")
    args = parser.parse_args()

    import uvloop

    with tempfile.TemporaryDirectory(prefix="mlspec-bench-") as tmp:
        root = Path(tmp)
        registered = register_iris(root)
        ports = {name: free_port() for name in ("floor", "mlspec", "gateway", *(["mlflow"] if args.mlflow else []))}
        write_gateway_config(root / "gateway.json", ports["mlspec"])
        argv = commands(registered, ports, root / "gateway.json")
        processes = {name: launch(argv[name], root / f"{name}.log", registered.tracking_uri) for name in ports}
        try:
            for name, port in ports.items():
                wait_ready(f"http://127.0.0.1:{port}", processes[name], root / f"{name}.log", health_path(name))
            for concurrency in args.concurrency:
                report(uvloop.run(measure(ports, concurrency, args.requests, args.rounds)), concurrency)
        finally:
            stop(processes)


def report(results: dict[str, dict[str, float]], concurrency: int) -> None:
    print(f"\n{concurrency} concurrent client(s), single-row requests")
    print(f"{'target':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9}")
    for name, figures in results.items():
        print(f"{name:<8} {figures['rps']:>8.0f} {figures['p50']:>8.3f} {figures['p99']:>8.3f} {figures['n']:>9.0f}")
    direct, gateway, floor = results["mlspec"], results["gateway"], results["floor"]
    print(f"mlspec / floor throughput: {direct['rps'] / floor['rps']:.2f}x (target >= 0.7x)")
    if "mlflow" in results:
        print(f"mlspec / mlflow models serve throughput: {direct['rps'] / results['mlflow']['rps']:.1f}x "
              "(target >= 20x)")
    print(f"gateway overhead: p50 {(gateway['p50'] / direct['p50'] - 1) * 100:+.0f}%, "
          f"p99 {(gateway['p99'] / direct['p99'] - 1) * 100:+.0f}%, "
          f"throughput {(gateway['rps'] / direct['rps'] - 1) * 100:+.0f}% (target: latency <= +15%)")


if __name__ == "__main__":
    main()

"""Scoring script vs the fast path: single-row requests to the same iris model through a scoring script's run()
(examples/iris-scoring: its score.py behind its schema.json) and through mlspec's own predict.

Run: .venv/bin/python bench/scoring_script.py [--requests 3000] [--concurrency 1 16] [--rounds 3]

Both targets are `python -m mlspec.runtime.serving` on 127.0.0.1 serving one freshly registered version; rounds
alternate between them so background load hits both alike. The script path parses the body as JSON, checks it
against the JSON Schema, calls run() on the scoring thread (never stacked with other requests) and serialises what
it returns; the fast path stacks concurrent rows into one predict on the event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from _serving_common import IRIS_BODY, commands, free_port, launch, register_iris, stop, wait_ready
from serving_quick import _client

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "iris-scoring" / "score"
SCRIPT_BODY = json.dumps({"data": [[5.1, 3.5, 1.4, 0.2]]}).encode()
BODIES = {"fast path": IRIS_BODY, "script": SCRIPT_BODY}


async def load(port: int, body: bytes, concurrency: int, count: int) -> tuple[float, list[float]]:
    request = (f"POST /invocations HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
               f"content-length: {len(body)}\r\n\r\n").encode() + body
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, request, count // concurrency, latencies) for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - started), latencies


async def measure(ports: dict[str, int], concurrency: int, total: int, rounds: int) -> dict[str, dict[str, float]]:
    rates: dict[str, list[float]] = {name: [] for name in ports}
    seen: dict[str, list[float]] = {name: [] for name in ports}
    for name, port in ports.items():
        await load(port, BODIES[name], concurrency, 200)  # warm-up
    for _ in range(rounds):
        for name, port in ports.items():
            rate, latencies = await load(port, BODIES[name], concurrency, max(concurrency, total // rounds))
            rates[name].append(rate)
            seen[name] += latencies
    results = {}
    for name in ports:
        ordered = sorted(seen[name])
        results[name] = {"rps": statistics.median(rates[name]), "p50": ordered[len(ordered) // 2] * 1e3,
                         "p99": ordered[int(len(ordered) * 0.99)] * 1e3, "n": len(ordered)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="per target and concurrency (default 3000)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import uvloop

    with tempfile.TemporaryDirectory(prefix="mlspec-bench-") as tmp:
        root = Path(tmp)
        registered = register_iris(root)
        ports = {"fast path": free_port(), "script": free_port()}
        plain = commands(registered, {"mlspec": ports["fast path"]}, root / "unused.json")["mlspec"]
        scripted = [*commands(registered, {"mlspec": ports["script"]}, root / "unused.json")["mlspec"],
                    "--code", str(EXAMPLE), "--scoring-script", "score.py",
                    "--input-schema", str(EXAMPLE / "schema.json")]
        logs = {"fast path": root / "fast.log", "script": root / "script.log"}
        processes = {"fast path": launch(plain, logs["fast path"], registered.tracking_uri),
                     "script": launch(scripted, logs["script"], registered.tracking_uri)}
        try:
            for name, port in ports.items():
                wait_ready(f"http://127.0.0.1:{port}", processes[name], logs[name])
            for concurrency in args.concurrency:
                report(uvloop.run(measure(ports, concurrency, args.requests, args.rounds)), concurrency)
        finally:
            stop(processes)


def report(results: dict[str, dict[str, float]], concurrency: int) -> None:
    print(f"\n{concurrency} concurrent client(s), single-row requests")
    print(f"{'target':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9}")
    for name, figures in results.items():
        print(f"{name:<10} {figures['rps']:>8.0f} {figures['p50']:>8.3f} {figures['p99']:>8.3f} {figures['n']:>9.0f}")
    print(f"script / fast path throughput: {results['script']['rps'] / results['fast path']['rps']:.2f}x "
          "(no target: the price of run() and the schema, for the flexibility)")


if __name__ == "__main__":
    main()

"""Large Open Inference Protocol bodies beside small requests: do big bodies stall the scoring server's other clients?

Run: .venv/bin/python bench/large_v2_body.py [--seconds 8] [--rows 200000] [--source TREE]

One client sends v2 infer requests of `--rows` iris rows (about 40 bytes a row of JSON) back to back; another
sends single-row /invocations requests and records their latency, first alone, then beside the large ones.
`--source` runs the server of another source tree (for a before/after). Target: the small requests' p99 beside
large bodies stays within a few milliseconds of a large body's parse (it is parsed on a thread, not the loop).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _serving_common as common


def small_latencies(port: int, seconds: float) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    found = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        connection.request("POST", "/invocations", common.IRIS_BODY, {"content-type": "application/json"})
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 200, answer.status
        found.append(time.perf_counter() - started)
        time.sleep(0.002)
    return found


def large_loop(port: int, body: bytes, stop: threading.Event, times: list[float]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while not stop.is_set():
        started = time.perf_counter()
        connection.request("POST", "/v2/models/iris-clf/infer", body, {"content-type": "application/json"})
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 200, (answer.status, answer.read()[:200])
        times.append(time.perf_counter() - started)


def describe(label: str, values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"{label:<28} n={len(values):<6} p50 {statistics.median(values) * 1000:7.2f} ms   "
            f"p99 {p99 * 1000:7.2f} ms   max {ordered[-1] * 1000:7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--source", type=Path, default=common.REPO, help="source tree whose server runs")
    options = parser.parse_args()
    common.REPO = options.source.resolve()
    os.chdir(common.REPO)  # `python -m` puts the working folder first on the path: the tree's own mlspec is run
    row = [5.1, 3.5, 1.4, 0.2]
    body = json.dumps({"inputs": [{"name": "x", "shape": [options.rows, 4], "datatype": "FP64",
                                   "data": row * options.rows}]}).encode()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        registered = common.register_iris(root)
        port = common.free_port()
        argv = [*common.commands(registered, {"mlspec": port}, root / "gateway.json")["mlspec"],
                "--max-body-size", str(len(body) + 1024), "--request-timeout", "60"]
        process = common.launch(argv, root / "server.log", registered.tracking_uri)
        try:
            common.wait_ready(f"http://127.0.0.1:{port}", process, root / "server.log")
            alone = small_latencies(port, options.seconds / 2)
            stop, large_times = threading.Event(), []  # type: ignore[var-annotated]
            sender = threading.Thread(target=large_loop, args=(port, body, stop, large_times))
            sender.start()
            time.sleep(0.5)
            beside = small_latencies(port, options.seconds)
            stop.set()
            sender.join()
        finally:
            common.stop({"mlspec": process})
    print(f"server from {common.REPO}; large body {len(body) / 2**20:.1f} MiB ({options.rows} rows)")
    print(describe("small requests alone", alone))
    print(describe("small beside large bodies", beside))
    print(describe("large v2 requests", large_times))


if __name__ == "__main__":
    main()

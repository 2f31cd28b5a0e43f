"""Benchmark: the shared state location's operations on a 1,000-record snapshot, in a folder and in an S3 bucket
(moto's S3 server on 127.0.0.1: the HTTP round trips and boto3's signing, without a network's latency): reading the
snapshot (what `plan --state` adds), publishing it, and a lock's take and release (what `up --state` adds); and what
an s3:// location adds to each command's start: importing boto3 and making its client, in a fresh process.

Run: .venv/bin/python bench/shared_state.py [--records 1000] [--runs 20]
Each figure is in-process wall time, best and median of the runs; the target is a share of `plan`'s 1 s budget.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlspec.backends.local.shared_lock import acquire, release
from mlspec.backends.local.shared_store import Store, store_at
from mlspec.backends.local.snapshot import encode, new_snapshot, read_snapshot, write_snapshot
from mlspec.plan import Record
from tests.s3_server import BUCKET, s3_environment

TARGET_MS = 100.0


def records(count: int) -> dict[str, Record]:
    return {f"data/d{i}": Record(f"data/d{i}", "Data", f"h{i:040d}", {"name": f"d{i}", "path": f"data/d{i}.csv",
                                                                      "description": f"dataset {i}"},
                                 {f"data/d{i}.csv": f"{i:064x}"}, {}, {"version": f"{i:012x}"}, "ready")
            for i in range(count)}


def timed(step: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1000)
    return times


def measure(store: Store, count: int, runs: int) -> list[tuple[str, list[float]]]:
    snapshot = new_snapshot("bench", records(count), "lineage", 1)
    write_snapshot(store, "bench.json", snapshot)

    def lock_cycle() -> None:
        release(store, "bench.lock", acquire(store, "bench.lock", "mlspec up"))

    return [("read snapshot", timed(lambda: read_snapshot(store, "bench.json"), runs)),
            ("publish", timed(lambda: write_snapshot(store, "bench.json", snapshot), runs)),
            ("lock + release", timed(lock_cycle, runs))]


def boto3_start(runs: int) -> list[float]:
    """Milliseconds to import boto3 and make an S3 client in a fresh process (each CLI command pays it once)."""
    code = ("import time; t = time.perf_counter(); import boto3; boto3.client('s3', region_name='us-east-1'); "
            "print((time.perf_counter() - t) * 1000)")
    return [float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
            for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        os.environ.update(s3_environment(f"http://{host}:{port}"))
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        with tempfile.TemporaryDirectory() as tmp:
            size = len(encode(new_snapshot("bench", records(args.records), "lineage", 1))) / 1000
            print(f"{args.records}-record snapshot ({size:.0f} KB), {args.runs} runs each\n")
            print(f"{'store':<7} {'operation':<15} {'best':>9} {'median':>9} {'target':>9}")
            for kind, location in (("folder", tmp), ("s3", f"s3://{BUCKET}/bench")):
                for name, times in measure(store_at(location), args.records, args.runs):
                    best, median = min(times), statistics.median(times)
                    verdict = "ok" if median < TARGET_MS else "MISSED"
                    print(f"{kind:<7} {name:<15} {best:>7.1f}ms {median:>7.1f}ms {TARGET_MS:>7.0f}ms  {verdict}")
        start = boto3_start(5)
        print(f"\ns3 start: import boto3 + client, fresh process: best {min(start):.0f}ms, median "
              f"{statistics.median(start):.0f}ms (once per command; not in the target)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()

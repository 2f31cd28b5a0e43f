"""The gateway's traffic record: cumulative answers by status and latency histograms per deployment and replica,
appended as time-stamped snapshots to a file, so that `mlspec endpoint stats` takes any window as a difference.

Why the gateway and not the replicas' own /metrics: only the gateway reaches replicas, it sees every request
(those it refuses itself too, before any replica), and its counts outlive a replica that restarts or scales in.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from bisect import bisect_left
from pathlib import Path
from typing import Any

import orjson

from mlspec.runtime.serving.metrics import LATENCY_BUCKETS

SNAPSHOT_INTERVAL_S = 5.0  # a window's start is known to within this; its end is read live from the gateway
# Past this, the older half of the file goes: a snapshot of two replicas is about 600 bytes, so at one every 5 s of
# traffic the file keeps 5 to 10 hours of it (`endpoint stats` says from when its data runs).
MAX_HISTORY_BYTES = 4 * 2**20
GATEWAY = ""  # the deployment (and replica) of answers the gateway gave itself: no key, no route, too large
RETIRED = "(earlier replicas)"  # a deployment's replicas no longer routed to, their counts merged


class Traffic:
    """Counts kept in plain dicts (one event loop updates them): (deployment, replica) -> (statuses, histogram),
    the histogram one count per LATENCY_BUCKETS bound, then +Inf, then the sum of seconds."""

    def __init__(self) -> None:
        self.boot = f"{os.getpid()}-{time.time_ns()}"  # counts restart at zero with the gateway: windows say so
        self.series: dict[tuple[str, str], tuple[dict[int, int], list[float]]] = {}
        self.changes = 0

    def record(self, deployment: str, replica: str, status: int, seconds: float) -> None:
        entry = self.series.get((deployment, replica))
        if entry is None:
            entry = self.series[(deployment, replica)] = ({}, [0.0] * (len(LATENCY_BUCKETS) + 2))
        statuses, histogram = entry
        statuses[status] = statuses.get(status, 0) + 1
        histogram[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        histogram[-1] += seconds
        self.changes += 1

    def retire(self, live: set[tuple[str, str]]) -> None:
        """Merge the counts of replicas not in `live` (deployment, replica) into their deployment's RETIRED series:
        every rollout starts new replicas, and a record of each would grow every snapshot without end."""
        for key in [k for k in self.series if k[1] not in (GATEWAY, RETIRED) and k not in live]:
            statuses, histogram = self.series.pop(key)
            merged = self.series.get((key[0], RETIRED))
            if merged is None:
                merged = self.series[(key[0], RETIRED)] = ({}, [0.0] * len(histogram))
            for status, count in statuses.items():
                merged[0][status] = merged[0].get(status, 0) + count
            for index, value in enumerate(histogram):
                merged[1][index] += value
            self.changes += 1

    def snapshot(self) -> dict[str, Any]:
        return {"time": time.time(), "boot": self.boot, "buckets": list(LATENCY_BUCKETS), "series": [
            {"deployment": deployment, "replica": replica, "status": {str(k): v for k, v in sorted(statuses.items())},
             "latency": histogram} for (deployment, replica), (statuses, histogram) in sorted(self.series.items())]}


class History:
    """Appends the traffic's snapshot to `path` at start, every SNAPSHOT_INTERVAL_S when anything changed, and at
    stop; a file over MAX_HISTORY_BYTES keeps its newer half."""

    def __init__(self, traffic: Traffic, path: Path, interval: float = SNAPSHOT_INTERVAL_S) -> None:
        self.traffic, self.path, self.interval = traffic, path, interval
        self._written = -1

    def write(self) -> None:
        if self.traffic.changes == self._written:
            return
        self._written = self.traffic.changes
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as file:
                file.write(orjson.dumps(self.traffic.snapshot()) + b"\n")
                size = file.tell()
            if size > MAX_HISTORY_BYTES:
                self._trim()
        except OSError as error:  # a full disk must not stop the gateway: the stats lose a snapshot, said so
            print(f"mlspec-gateway: cannot record traffic in {self.path}: {error}", file=sys.stderr, flush=True)

    def _trim(self) -> None:
        lines = self.path.read_bytes().splitlines(keepends=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_bytes(b"".join(lines[len(lines) // 2:]))
        os.replace(temporary, self.path)

    async def run(self) -> None:
        self.write()  # the boot's zero: a window reaching back past the gateway's start counts from here
        try:
            while True:
                await asyncio.sleep(self.interval)
                self.write()
        finally:
            with contextlib.suppress(Exception):
                self.write()

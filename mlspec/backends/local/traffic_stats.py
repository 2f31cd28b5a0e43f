"""An endpoint's traffic over a window: the difference between the gateway's counts now (read live over its
control channel, else its last recorded snapshot) and its recorded snapshot at the window's start."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Key = tuple[str, str]  # (deployment, replica); ("", "") for the answers the gateway gave itself


@dataclass
class Series:
    statuses: dict[int, int] = field(default_factory=dict)
    latency: list[float] = field(default_factory=list)  # per bucket bound, then +Inf, then the sum of seconds

    def add(self, statuses: dict[str, int], latency: list[float], sign: int = 1) -> None:
        for code, count in statuses.items():
            self.statuses[int(code)] = self.statuses.get(int(code), 0) + sign * int(count)
        if not self.latency:
            self.latency = [0.0] * len(latency)
        for index, value in enumerate(latency):
            self.latency[index] += sign * value

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def errors(self, low: int) -> int:
        return sum(n for code, n in self.statuses.items() if low <= code < low + 100)


def read_history(path: Path) -> list[dict[str, Any]]:
    """The recorded snapshots, oldest first; a line cut short by a crash is skipped."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    snapshots = []
    for line in lines:
        try:
            snapshot = json.loads(line)
        except ValueError:
            continue
        if isinstance(snapshot, dict) and "time" in snapshot and "boot" in snapshot:
            snapshots.append(snapshot)
    return snapshots


def _series(snapshot: dict[str, Any] | None) -> Iterable[tuple[Key, dict[str, int], list[float]]]:
    for entry in (snapshot or {}).get("series", []):
        yield (entry["deployment"], entry["replica"]), entry["status"], entry["latency"]


def window(snapshots: list[dict[str, Any]], start: float) -> tuple[dict[Key, Series], list[float], float]:
    """Per (deployment, replica), what was answered after `start` (seconds since the epoch): for each run of the
    gateway (its counts restart with it), its last snapshot less its last one at or before `start` (nothing when
    it started later). Also the latency buckets' bounds, and when the data actually begins (later than `start`
    when the history does not reach back so far)."""
    boots: dict[str, list[dict[str, Any]]] = {}
    for snapshot in sorted(snapshots, key=lambda s: float(s["time"])):
        boots.setdefault(str(snapshot["boot"]), []).append(snapshot)
    found: dict[Key, Series] = {}
    buckets: list[float] = []
    covered = float("inf")
    for runs in boots.values():
        last = runs[-1]
        if float(last["time"]) < start:
            continue
        before = [s for s in runs if float(s["time"]) <= start]
        base = before[-1] if before else None
        covered = min(covered, start if base else float(runs[0]["time"]))
        buckets = buckets or list(last.get("buckets", []))
        for key, statuses, latency in _series(last):
            found.setdefault(key, Series()).add(statuses, latency)
        for key, statuses, latency in _series(base):
            found.setdefault(key, Series()).add(statuses, latency, -1)
    return {k: v for k, v in found.items() if v.requests}, buckets, covered


def quantile(series: Series, buckets: list[float], q: float) -> float | None:
    """Prometheus's histogram_quantile: linear within the bucket the q-th answer falls in; None without answers."""
    counts = series.latency[:len(buckets) + 1]
    total = sum(counts)
    if not total:
        return None
    rank, running = q * total, 0.0
    for index, count in enumerate(counts):
        if running + count >= rank and count:
            if index == len(buckets):  # over the largest bound: that bound is all a histogram can say
                return buckets[-1]
            lower = buckets[index - 1] if index else 0.0
            return lower + (buckets[index] - lower) * (rank - running) / count
        running += count
    return buckets[-1]

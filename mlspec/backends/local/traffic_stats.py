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
            total = self.statuses.get(int(code), 0) + sign * int(count)
            if total:
                self.statuses[int(code)] = total
            else:
                self.statuses.pop(int(code), None)
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
    gateway (its counts restart with it), its last snapshot less its last one at or before `start` (its first
    when none is so old). Also the latency buckets' bounds, and when the data actually begins (later than `start`
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
        # The run's first snapshot when none is that old: its zero, written as it started, or the oldest one the
        # trimmed history kept (counting from there, never from counts nobody recorded).
        base = before[-1] if before else runs[0]
        covered = min(covered, start if before else float(runs[0]["time"]))
        buckets = buckets or list(last.get("buckets", []))
        earlier = {key: (statuses, latency) for key, statuses, latency in _series(base)}
        _carry_retired(earlier, {key for key, _, _ in _series(last)})
        for key, statuses, latency in _series(last):
            series = found.setdefault(key, Series())
            series.add(statuses, latency)
            old = earlier.get(key)
            # As Prometheus's increase(): a count lower than before started again (a replica's counts merged into
            # its deployment's earlier replicas when it left, then one late answer): all of it is new. A series
            # gone since `start` was merged there, which counts on.
            if old is not None and all(statuses.get(code, 0) >= count for code, count in old[0].items()):
                series.add(old[0], old[1], -1)
    return {k: v for k, v in found.items() if v.requests}, buckets, covered


def _carry_retired(earlier: dict[Key, tuple[dict[str, int], list[float]]], now: set[Key]) -> None:
    """Series of `earlier` gone by now were merged into their deployment's RETIRED series: count them in its
    baseline, so that only what they answered since is new."""
    from mlspec.runtime.gateway.traffic import GATEWAY, RETIRED

    for key in [k for k in earlier if k not in now and k[1] not in (GATEWAY, RETIRED)]:
        statuses, latency = earlier.pop(key)
        merged = Series()
        previous = earlier.get((key[0], RETIRED))
        if previous is not None:
            merged.add(*previous)
        merged.add(statuses, latency)
        earlier[(key[0], RETIRED)] = ({str(k): v for k, v in merged.statuses.items()}, merged.latency)


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

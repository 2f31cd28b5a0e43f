"""Windows over the gateway's traffic record: counts as differences of snapshots written to a real file, across a
gateway restart (its counts start again at zero), and percentiles read from the latency histograms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlspec.backends.local.traffic_stats import Series, quantile, read_history, window
from mlspec.runtime.gateway.traffic import RETIRED, History, Traffic


def snapshot_at(traffic: Traffic, when: float) -> dict[str, Any]:
    return {**traffic.snapshot(), "time": when}


def test_a_window_counts_what_was_answered_after_its_start(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    first = Traffic()
    history = History(first, path)
    history.write()  # the boot's zero
    history.write()  # nothing changed: nothing written
    for _ in range(5):
        first.record("blue", "unix:/s/blue-0.sock", 200, 0.003)
    first.record("", "", 401, 0.0)
    history.write()
    lines = read_history(path)
    assert len(lines) == 2 and lines[0]["series"] == []
    # Rewritten with chosen times: the zero at 100, five answers and a refusal by 200.
    snapshots = [{**lines[0], "time": 100.0}, {**lines[1], "time": 200.0}]
    later = Traffic()  # the gateway restarted: its counts start again
    later.record("blue", "unix:/s/blue-1.sock", 200, 0.02)
    later.record("blue", "unix:/s/blue-1.sock", 503, 0.001)
    snapshots += [snapshot_at(_zero(later), 300.0), snapshot_at(later, 400.0)]

    found, _, covered = window(snapshots, 50.0)
    assert found[("blue", "unix:/s/blue-0.sock")].statuses == {200: 5}
    assert found[("blue", "unix:/s/blue-1.sock")].statuses == {200: 1, 503: 1}
    assert found[("", "")].statuses == {401: 1} and covered == 100.0
    found, _, covered = window(snapshots, 250.0)  # only the second run's answers
    assert set(found) == {("blue", "unix:/s/blue-1.sock")} and covered == 300.0
    # Between two snapshots the start is known to within their interval: the answers after the one at 100 count.
    found, _, covered = window(snapshots, 150.0)
    assert found[("blue", "unix:/s/blue-0.sock")].statuses == {200: 5} and covered == 150.0
    series = found[("blue", "unix:/s/blue-1.sock")]
    assert series.errors(500) == 1 and series.errors(400) == 0 and series.requests == 2


def _zero(traffic: Traffic) -> Traffic:
    """A snapshot source of the same run with nothing counted yet (its boot's first line)."""
    zero = Traffic()
    zero.boot = traffic.boot
    return zero


def test_percentiles_fall_in_the_buckets_of_the_latencies_recorded() -> None:
    traffic = Traffic()
    for _ in range(98):
        traffic.record("blue", "r", 200, 0.002)  # in (1 ms, 2.5 ms]
    for _ in range(2):
        traffic.record("blue", "r", 200, 0.4)  # in (250 ms, 500 ms]
    found, buckets, _ = window([snapshot_at(_zero(traffic), 5.0), snapshot_at(traffic, 10.0)], 0.0)
    series = found[("blue", "r")]
    assert 0.001 < (quantile(series, buckets, 0.5) or 0) <= 0.0025
    assert 0.25 < (quantile(series, buckets, 0.99) or 0) <= 0.5
    assert quantile(Series(), buckets, 0.5) is None


def test_replicas_that_leave_are_merged_and_their_deployment_counts_on() -> None:
    traffic = Traffic()
    for replica in ("old-0", "old-1"):
        traffic.record("blue", replica, 200, 0.01)
    traffic.record("", "", 401, 0.0)
    start = snapshot_at(traffic, 100.0)
    traffic.record("blue", "old-0", 500, 0.01)
    traffic.retire({("blue", "new-0")})  # a rollout: the old replicas left the configuration
    traffic.record("blue", "new-0", 200, 0.01)
    assert set(traffic.series) == {("blue", RETIRED), ("blue", "new-0"), ("", "")}
    found, _, _ = window([start, snapshot_at(traffic, 200.0)], 150.0)
    assert found[("blue", RETIRED)].statuses == {500: 1}  # only what came after the window's start
    assert found[("blue", "new-0")].statuses == {200: 1} and ("", "") not in found
    traffic.record("blue", "old-1", 200, 0.01)  # a late answer from a replica that has just left
    found, _, _ = window([start, snapshot_at(traffic, 300.0)], 150.0)
    assert sum(s.requests for key, s in found.items() if key[0] == "blue") == 3


def test_a_trimmed_history_counts_from_its_oldest_snapshot_kept() -> None:
    traffic = Traffic()
    for _ in range(4):
        traffic.record("blue", "r", 200, 0.01)
    oldest = snapshot_at(traffic, 100.0)  # the run's zero and earlier snapshots were trimmed away
    traffic.record("blue", "r", 200, 0.01)
    found, _, covered = window([oldest, snapshot_at(traffic, 200.0)], 50.0)
    assert found[("blue", "r")].statuses == {200: 1} and covered == 100.0
    found, _, covered = window([snapshot_at(traffic, 200.0)], 50.0)  # no history: nothing known before now
    assert found == {} and covered == 200.0

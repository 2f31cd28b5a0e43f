"""Probe thresholds and the probe runner's schedule (initial delay, period, timeout) against real HTTP."""

from __future__ import annotations

import asyncio
import statistics
import time
from itertools import pairwise

import pytest

from mlspec.runtime.probing import ProbeRunner, ProbeSettings, ProbeState, http_ok


def test_failure_threshold_takes_it_out_and_success_threshold_brings_it_back() -> None:
    state = ProbeState(ProbeSettings(failure_threshold=3, success_threshold=2))
    assert [state.record(ok) for ok in (False, False, True, False, False)] == [False] * 5  # never 3 in a row
    assert state.passing
    assert state.record(False) and not state.passing
    assert not state.record(True) and not state.passing  # one success is not enough
    assert not state.record(False)
    assert not state.record(True)
    assert state.record(True) and state.passing


@pytest.mark.parametrize("data", [{"period": 0}, {"timeout": -1}, {"failure_threshold": 0}, {"often": 1},
                                  {"success_threshold": 1.5}, []])
def test_invalid_settings_are_refused(data: object) -> None:
    with pytest.raises(ValueError):
        ProbeSettings.parse(data, "readiness")


def test_runner_waits_initial_delay_probes_each_period_and_reports_crossings() -> None:
    async def scenario() -> tuple[list[float], list[tuple[str, bool]]]:
        probed: list[float] = []
        changes: list[tuple[str, bool]] = []
        started = time.monotonic()

        async def probe(url: str, timeout: float) -> bool:
            probed.append(time.monotonic() - started)
            return len(probed) > 3  # three failures, then successes

        runner = ProbeRunner(lambda key, ok: changes.append((key, ok)), probe)
        runner.set_targets({"r": ("http://x/health", ProbeSettings(0.3, 0.1, 1, 2, 2), True)})
        task = asyncio.get_running_loop().create_task(runner.run())
        # Until both crossings and two probes more, or a deadline that only a hung runner reaches: a loaded
        # machine may run the loop late, so the test waits on events, not on a fixed sleep.
        deadline = time.monotonic() + 10
        while (len(changes) < 2 or len(probed) < 7) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        task.cancel()
        return probed, changes

    probed, changes = asyncio.run(scenario())
    assert probed[0] >= 0.3  # nothing before the initial delay
    intervals = [later - earlier for earlier, later in pairwise(probed)]
    assert min(intervals) > 0.09  # never sooner than the period
    assert statistics.median(intervals) < 0.2  # and each period (a late loop may stretch one, not most)
    assert changes == [("r", False), ("r", True)]  # out after 2 failures, back after 2 successes


def test_http_ok_times_out_on_a_server_that_never_answers() -> None:
    async def scenario() -> tuple[bool, float]:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)  # accepts, never answers
        port = server.sockets[0].getsockname()[1]
        started = time.monotonic()
        ok = await http_ok(f"http://127.0.0.1:{port}/health", 0.3)
        server.close()
        return ok, time.monotonic() - started

    ok, took = asyncio.run(scenario())
    assert not ok and 0.25 < took < 1.0
    assert not asyncio.run(http_ok("http://127.0.0.1:1/health", 0.5))  # nothing listening

"""The supervisor's scheduler, driven by an injected clock: runs start on time, missed runs follow the `missed`
policy after a downtime, end_time ends a schedule, and a resource never has two runs at once, even across a
supervisor restart. The runs are real processes, started as the supervisor starts them (with its marks)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.processes import ID_VAR, STARTED_BY_VAR, SUPERVISOR, WORKSPACE_VAR, is_ours, stop_group
from mlspec.backends.local.schedule_state import ScheduleRow, arm, run_id_of, schedule_of
from mlspec.backends.local.scheduler import Scheduler, workspace_lock
from mlspec.backends.local.state import StateStore, exclusive
from tests.local.conftest import wait_for

T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float):
        self.at = now

    def now(self) -> float:
        return self.at


class Launcher:
    """Starts each run as a real process marked as the supervisor's; `seconds` is how long a run takes."""

    def __init__(self, workspace: str, seconds: float = 0.0):
        self.workspace, self.seconds = workspace, seconds
        self.started: list[tuple[str, int]] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    def __call__(self, row: ScheduleRow, run: int) -> subprocess.Popen[bytes]:
        self.started.append((row.id, run))
        marks = {ID_VAR: run_id_of(row.id), WORKSPACE_VAR: self.workspace, STARTED_BY_VAR: SUPERVISOR}
        process = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({self.seconds})"],
                                   env={**os.environ, **marks}, start_new_session=True)
        self.processes.append(process)
        return process

    def wait(self) -> None:
        for process in self.processes:
            process.wait(timeout=60)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    paths = WorkspacePaths(tmp_path / ".mlspec")
    paths.create()
    store = StateStore(paths.state_db)
    yield store
    store.close()


def _scheduler(store: StateStore, clock: Clock, seconds: float = 0.0) -> tuple[Scheduler, Launcher]:
    launcher = Launcher(str(store.path.parent.resolve()), seconds)
    return Scheduler(clock, launcher, log=lambda _line: None), launcher


def _settle(scheduler: Scheduler, launcher: Launcher, store: StateStore) -> None:
    """Let every run started so far finish, and the scheduler note it."""
    launcher.wait()
    scheduler.tick(store)


def test_a_run_starts_when_due_and_not_before(store: StateStore) -> None:
    arm(store, "job/train", {"every": 3600.0}, {"kind": "job"}, T0)
    clock = Clock(T0 + 3599)
    scheduler, launcher = _scheduler(store, clock)
    assert scheduler.tick(store) and launcher.started == []
    clock.at = T0 + 3600
    scheduler.tick(store)
    assert launcher.started == [("job/train", 1)]
    row = schedule_of(store, "job/train")
    assert row is not None and row.last_run == T0 + 3600 and row.next_run == T0 + 7200
    _settle(scheduler, launcher, store)
    row = schedule_of(store, "job/train")
    assert row is not None and row.pid is None  # it could not record an outcome itself (not a real run):
    assert row.last_outcome == "failed" and "before it recorded an outcome" in str(row.last_error)


@pytest.mark.parametrize(("missed", "runs"), [("run_once", 1), ("skip", 0)])
def test_after_a_downtime_run_once_catches_up_once_and_skip_waits(store: StateStore, missed: str, runs: int) -> None:
    arm(store, "job/train", {"every": 3600.0, "missed": missed}, {"kind": "job"}, T0)
    clock = Clock(T0 + 10 * 3600 + 120)  # off for ten hours: ten runs were missed
    scheduler, launcher = _scheduler(store, clock)
    scheduler.tick(store)
    _settle(scheduler, launcher, store)
    scheduler.tick(store)
    assert len(launcher.started) == runs
    row = schedule_of(store, "job/train")
    assert row is not None and row.next_run == T0 + 11 * 3600  # the next time after now, whatever the policy
    assert row.missed == (1 if missed == "skip" else 0)


def test_a_daily_cron_fires_at_the_zone_s_time_across_the_spring_dst_change(store: StateStore) -> None:
    saturday = datetime(2026, 3, 28, 12, tzinfo=UTC).timestamp()
    arm(store, "endpoint/nightly", {"cron": "30 2 * * *", "timezone": "Europe/Paris"}, {"kind": "batch"}, saturday)
    row = schedule_of(store, "endpoint/nightly")
    # 02:30 does not exist in Paris on 29 March: the run is at 03:00 CEST (01:00 UTC).
    assert row is not None and row.next_run == datetime(2026, 3, 29, 1, 0, tzinfo=UTC).timestamp()
    clock = Clock(row.next_run)
    scheduler, launcher = _scheduler(store, clock)
    scheduler.tick(store)
    assert launcher.started == [("endpoint/nightly", 1)]
    row = schedule_of(store, "endpoint/nightly")
    assert row is not None and row.next_run == datetime(2026, 3, 30, 0, 30, tzinfo=UTC).timestamp()  # 02:30 CEST
    _settle(scheduler, launcher, store)


def test_end_time_ends_the_schedule(store: StateStore) -> None:
    end = datetime.fromtimestamp(T0 + 2.5 * 3600, UTC).isoformat()
    arm(store, "job/train", {"every": 3600.0, "end_time": end}, {"kind": "job"}, T0)
    clock = Clock(T0)
    scheduler, launcher = _scheduler(store, clock)
    for hour in (1, 2, 3, 4):
        clock.at = T0 + hour * 3600
        scheduler.tick(store)
        _settle(scheduler, launcher, store)
    assert [run for _, run in launcher.started] == [1, 2]
    row = schedule_of(store, "job/train")
    assert row is not None and row.next_run is None
    assert scheduler.tick(store) is False  # nothing left to keep the supervisor up for


def test_a_run_still_going_when_the_next_is_due_is_never_started_twice(store: StateStore) -> None:
    arm(store, "job/train", {"every": 60.0}, {"kind": "job"}, T0)
    clock = Clock(T0 + 60)
    scheduler, launcher = _scheduler(store, clock, seconds=300)
    scheduler.tick(store)
    first = launcher.processes[0]
    for minutes in (2, 3, 4):  # due again three times while the first run goes
        clock.at = T0 + minutes * 60
        scheduler.tick(store)
    # A supervisor restarted meanwhile finds the run by its pid and marks in the state, and waits for it too.
    # A process's /proc environ is empty for a moment after its start: wait until it shows the run's marks.
    wait_for(lambda: is_ours(first.pid, "schedule/job/train"), 30)
    restarted, relaunched = _scheduler(store, clock)
    restarted.tick(store)
    assert launcher.started == [("job/train", 1)] and relaunched.started == []
    assert scheduler.in_flight(store) == {"schedule/job/train"}  # the supervisor's sweep leaves it running
    stop_group(first.pid)
    first.wait(timeout=30)
    restarted.tick(store)  # the run has ended: the one that waited starts now (run_once)
    assert relaunched.started == [("job/train", 2)]
    _settle(restarted, relaunched, store)


def test_no_run_starts_while_an_up_holds_the_workspace_lock(store: StateStore) -> None:
    paths = WorkspacePaths(store.path.parent)
    arm(store, "job/train", {"every": 60.0}, {"kind": "job"}, T0)
    launcher = Launcher(str(paths.root.resolve()))
    scheduler = Scheduler(Clock(T0 + 60), launcher, log=lambda _line: None, lock=workspace_lock(paths))
    with exclusive(paths.lock, 0.0):  # as `mlspec up` holds it while it applies
        scheduler.tick(store)
    assert launcher.started == []
    scheduler.tick(store)  # the `up` is done: the run that waited starts
    assert launcher.started == [("job/train", 1)]
    _settle(scheduler, launcher, store)

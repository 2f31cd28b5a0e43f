"""Restart backoff: it grows with crashes in a row and starts over once a process has run steadily."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.processes import stop_group
from mlspec.backends.local.state import ProcessRow, StateStore
from mlspec.backends.local.supervisor import MAX_BACKOFF, RESET_AFTER_S, Supervisor, backoff


def setup(tmp_path: Path, argv: list[str] | None = None) -> tuple[Supervisor, StateStore, ProcessRow]:
    paths = WorkspacePaths(tmp_path / ".mlspec")
    paths.create()
    store = StateStore(paths.state_db)
    store.want_process(ProcessRow(id="t/p", owner="t", argv=argv or ["true"], env={}, cwd=str(tmp_path),
                                  log=str(tmp_path / "p.log"), health=None))
    return Supervisor(paths), store, store.processes()[0]


def crash(supervisor: Supervisor, store: StateStore, ran_for: float) -> float:
    """The process exits after running `ran_for` seconds; how long until the supervisor restarts it."""
    now = time.time()
    store.observe("t/p", started=now - ran_for, pid=None, state="running")
    row = store.processes()[0]
    supervisor.restart_later(store, row, 1, "exited with 1", now)
    return supervisor.not_before["t/p"] - now


def test_backoff_doubles_up_to_its_ceiling() -> None:
    assert [backoff(n) for n in range(8)] == [1, 2, 4, 8, 16, MAX_BACKOFF, MAX_BACKOFF, MAX_BACKOFF]


def test_crashes_in_a_row_wait_longer_and_longer(tmp_path: Path) -> None:
    supervisor, store, _ = setup(tmp_path)
    delays = [crash(supervisor, store, ran_for=2) for _ in range(7)]
    assert delays == pytest.approx([1, 2, 4, 8, 16, 30, 30])
    row = store.processes()[0]
    assert row.restarts == 7 and row.streak == 7 and row.state == "restarting"


def test_a_crash_after_running_steadily_restarts_at_the_base_delay(tmp_path: Path) -> None:
    supervisor, store, _ = setup(tmp_path)
    for _ in range(6):
        crash(supervisor, store, ran_for=2)
    assert crash(supervisor, store, ran_for=RESET_AFTER_S + 1) == pytest.approx(1)
    row = store.processes()[0]
    assert row.restarts == 7 and row.streak == 1  # every restart is counted; the streak started over
    assert crash(supervisor, store, ran_for=2) == pytest.approx(2)


@pytest.mark.e2e
def test_a_process_running_steadily_loses_its_crash_streak(tmp_path: Path) -> None:
    """A running process's streak is cleared by the supervisor's own pass once it has run RESET_AFTER_S, so status
    stops calling it crash-looping without waiting for another exit."""
    supervisor, store, row = setup(tmp_path, [sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor.start(store, row)
    try:
        store.observe("t/p", streak=4, restarts=4)
        supervisor.tick(store)
        assert store.processes()[0].streak == 4  # just started: still in the loop
        store.observe("t/p", started=time.time() - RESET_AFTER_S - 1)
        supervisor.tick(store)
        running = store.processes()[0]
        assert running.streak == 0 and running.restarts == 4 and running.state == "running"
    finally:
        stop_group(supervisor.children["t/p"].pid)

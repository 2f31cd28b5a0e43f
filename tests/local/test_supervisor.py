"""The supervisor with real processes: starts, restarts with backoff, stops, adopts, sweeps orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.processes import ID_VAR, WORKSPACE_VAR, is_ours, workspace_processes
from mlspec.backends.local.state import ProcessRow, StateStore
from mlspec.backends.local.supervisor import ensure_running, running

pytestmark = pytest.mark.e2e


def wait_for(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[tuple[WorkspacePaths, StateStore]]:
    paths = WorkspacePaths(tmp_path / ".mlspec")
    paths.create()
    store = StateStore(paths.state_db)
    yield paths, store
    store.release_processes("t")
    for row in store.processes():
        store.observe(row.id, desired=0)
    if store.processes():
        ensure_running(paths)
        wait_for(lambda: not store.processes(), 15)
    wait_for(lambda: not running(paths), 10)


def sleeper(paths: WorkspacePaths, name: str, seconds: float = 60) -> ProcessRow:
    return ProcessRow(id=name, owner="t", argv=[sys.executable, "-c", f"import time; time.sleep({seconds})"],
                      env={}, cwd=str(paths.root), log=str(paths.logs / f"{name}.log"), health=None)


def pid_of(store: StateStore, name: str) -> int | None:
    return next((r.pid for r in store.processes() if r.id == name), None)


def test_starts_restarts_a_crash_and_stops(workspace: tuple[WorkspacePaths, StateStore]) -> None:
    paths, store = workspace
    store.want_process(sleeper(paths, "t/a"))
    ensure_running(paths)
    wait_for(lambda: is_ours(pid_of(store, "t/a"), "t/a"))
    first = pid_of(store, "t/a")
    os.kill(first, signal.SIGKILL)  # type: ignore[arg-type]
    wait_for(lambda: pid_of(store, "t/a") not in (None, first))
    row = next(r for r in store.processes() if r.id == "t/a")
    assert row.restarts == 1 and row.last_exit == -signal.SIGKILL
    assert any("exited" in e[2] for e in store.events("t"))
    second = pid_of(store, "t/a")
    store.release_processes("t")
    wait_for(lambda: not store.processes())
    assert not is_ours(second, "t/a")


def test_supervisor_kill_leaves_children_that_the_next_one_adopts(
        workspace: tuple[WorkspacePaths, StateStore]) -> None:
    paths, store = workspace
    store.want_process(sleeper(paths, "t/b"))
    ensure_running(paths)
    wait_for(lambda: is_ours(pid_of(store, "t/b"), "t/b"))
    child = pid_of(store, "t/b")
    supervisor_pid = int(subprocess.check_output(["pgrep", "-f", f"supervisor {paths.root.resolve()}"]).split()[0])
    os.kill(supervisor_pid, signal.SIGKILL)
    wait_for(lambda: not running(paths))
    ensure_running(paths)
    time.sleep(1.0)
    assert pid_of(store, "t/b") == child  # adopted, not restarted
    assert is_ours(child, "t/b")


def test_orphans_of_the_workspace_are_swept(workspace: tuple[WorkspacePaths, StateStore]) -> None:
    paths, store = workspace
    env = {**os.environ, ID_VAR: "t/ghost", WORKSPACE_VAR: str(paths.root.resolve())}
    ghost = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env, start_new_session=True)
    wait_for(lambda: ghost.pid in workspace_processes(str(paths.root.resolve())))
    store.want_process(sleeper(paths, "t/c"))
    ensure_running(paths)
    wait_for(lambda: ghost.poll() is not None)


def test_crash_loop_backs_off(workspace: tuple[WorkspacePaths, StateStore]) -> None:
    paths, store = workspace
    crash = ProcessRow(id="t/crash", owner="t", argv=[sys.executable, "-c", "raise SystemExit(3)"], env={},
                       cwd=str(paths.root), log=str(paths.logs / "crash.log"), health=None)
    store.want_process(crash)
    ensure_running(paths)
    time.sleep(3.5)
    row = next(r for r in store.processes() if r.id == "t/crash")
    assert row.last_exit == 3
    assert 1 <= row.restarts <= 3  # backoff 1s, 2s, 4s...: not a hot loop

"""The supervisor with real processes: starts, restarts with backoff, stops, adopts, sweeps only its own orphans,
survives a state that is locked, replaced or moved away."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlspec.backends.local.context import Context, StepFailed
from mlspec.backends.local.health import wait_healthy
from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.processes import (
    ID_VAR,
    STARTED_BY_VAR,
    SUPERVISOR,
    WORKSPACE_VAR,
    free_port,
    is_ours,
    up_process_env,
    workspace_processes,
)
from mlspec.backends.local.state import ProcessRow, StateStore
from mlspec.backends.local.supervisor import STATE_GONE_S
from mlspec.backends.local.supervisor_start import ensure_running, running
from tests.local.conftest import mlspec, wait_for

pytestmark = pytest.mark.e2e




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


def marked(paths: WorkspacePaths, marks: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, **marks}
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env, start_new_session=True)


def test_the_supervisor_sweeps_only_its_own_orphans(workspace: tuple[WorkspacePaths, StateStore]) -> None:
    paths, store = workspace
    root = str(paths.root.resolve())
    ghost = marked(paths, {ID_VAR: "t/ghost", WORKSPACE_VAR: root, STARTED_BY_VAR: SUPERVISOR})
    # A job and a batch run started by this (live) `up`, and a job of an `up` that is gone: never the supervisor's
    # to stop, however it finds them.
    job = marked(paths, up_process_env(root, "job/train"))
    batch = marked(paths, up_process_env(root, "endpoint/nightly"))
    abandoned = marked(paths, {ID_VAR: "job/old", WORKSPACE_VAR: root, STARTED_BY_VAR: "up 999999 1"})
    try:
        wait_for(lambda: len(workspace_processes(root)) == 4)
        store.want_process(sleeper(paths, "t/c"))
        ensure_running(paths)
        wait_for(lambda: ghost.poll() is not None)
        wait_for(lambda: is_ours(pid_of(store, "t/c"), "t/c"))
        time.sleep(1.0)
        assert job.poll() is None and batch.poll() is None and abandoned.poll() is None
    finally:
        for proc in (ghost, job, batch, abandoned):
            proc.kill()
            proc.wait()


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


def test_a_working_directory_holding_mlspec_py_does_not_stop_the_supervisor(
        workspace: tuple[WorkspacePaths, StateStore], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths, store = workspace
    project = tmp_path / "project"
    project.mkdir()
    (project / "mlspec.py").write_text("raise SystemExit('the user spec was imported as mlspec')\n")
    monkeypatch.chdir(project)  # where `mlspec up` runs: a DSL spec folder
    store.want_process(sleeper(paths, "t/d"))
    ensure_running(paths)
    wait_for(lambda: is_ours(pid_of(store, "t/d"), "t/d"))


def context(paths: WorkspacePaths, store: StateStore) -> Context:
    return Context(graph=None, paths=paths, store=store, records={}, say=print)  # type: ignore[arg-type]


def test_a_process_dying_at_start_fails_the_wait_at_once_with_its_own_fresh_lines(
        workspace: tuple[WorkspacePaths, StateStore]) -> None:
    paths, store = workspace
    log = paths.logs / "dies.log"
    log.write_text("a line from an earlier run\n")
    port = free_port()
    store.want_process(ProcessRow(
        id="t/dies", owner="t", argv=[sys.executable, "-c", "print('cannot load the model'); raise SystemExit(3)"],
        env={}, cwd=str(paths.root), log=str(log), health=f"http://127.0.0.1:{port}/health"))
    ensure_running(paths)
    began = time.monotonic()
    with pytest.raises(StepFailed) as failure:
        wait_healthy(context(paths, store), ["t/dies"], 120)
    assert time.monotonic() - began < 15
    message = str(failure.value)
    assert "exited with 3" in message and "cannot load the model" in message
    assert "earlier run" not in message


def test_a_wait_starts_the_supervisor_again_when_it_is_gone(workspace: tuple[WorkspacePaths, StateStore]) -> None:
    paths, store = workspace
    port = free_port()
    store.want_process(ProcessRow(
        id="t/web", owner="t", argv=[sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        env={}, cwd=str(paths.root), log=str(paths.logs / "web.log"), health=f"http://127.0.0.1:{port}/"))
    assert not running(paths)  # declared, but its supervisor is gone (killed, or never came up)
    wait_healthy(context(paths, store), ["t/web"], 20)
    assert running(paths)


def test_a_locked_state_does_not_stop_the_supervisor(workspace: tuple[WorkspacePaths, StateStore]) -> None:
    paths, store = workspace
    store.want_process(sleeper(paths, "t/e"))
    ensure_running(paths)
    wait_for(lambda: is_ours(pid_of(store, "t/e"), "t/e"))
    first = pid_of(store, "t/e")
    holder = sqlite3.connect(paths.state_db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the state longer than a write waits for it
    os.kill(first, signal.SIGKILL)  # type: ignore[arg-type]
    time.sleep(32.0)
    holder.execute("ROLLBACK")
    holder.close()
    assert running(paths)
    wait_for(lambda: pid_of(store, "t/e") not in (None, first) and is_ours(pid_of(store, "t/e"), "t/e"), 15)


def test_a_state_replaced_from_a_backup_is_followed(workspace: tuple[WorkspacePaths, StateStore],
                                                     tmp_path: Path) -> None:
    paths, store = workspace
    store.want_process(sleeper(paths, "t/old"))
    ensure_running(paths)
    wait_for(lambda: is_ours(pid_of(store, "t/old"), "t/old"))
    old = pid_of(store, "t/old")
    backup = StateStore(tmp_path / "backup.db")
    backup.want_process(sleeper(paths, "t/new"))
    backup.close()
    store.close()
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database" * 100)
    os.replace(broken, paths.state_db)  # unreadable for a moment...
    time.sleep(1.5)
    os.replace(tmp_path / "backup.db", paths.state_db)  # ...then a backup is restored
    store = StateStore(paths.state_db)
    wait_for(lambda: is_ours(pid_of(store, "t/new"), "t/new"), 15)
    wait_for(lambda: not is_ours(old, "t/old"), 15)
    assert running(paths)
    store.close()


def test_a_state_moved_away_stops_what_it_declared(workspace: tuple[WorkspacePaths, StateStore],
                                                    tmp_path: Path) -> None:
    paths, store = workspace
    store.want_process(sleeper(paths, "t/f"))
    ensure_running(paths)
    wait_for(lambda: is_ours(pid_of(store, "t/f"), "t/f"))
    child = pid_of(store, "t/f")
    store.close()
    os.replace(paths.state_db, tmp_path / "kept.db")  # "move the file away to start over"
    wait_for(lambda: not is_ours(child, "t/f") and not running(paths), STATE_GONE_S + 15)


def test_status_never_calls_a_dead_process_running(workspace: tuple[WorkspacePaths, StateStore]) -> None:
    paths, store = workspace
    (paths.root.parent / "mlspec.yaml").write_text("kind: Workspace\nname: t\n")
    store.want_process(sleeper(paths, "t/g"))
    ensure_running(paths)
    wait_for(lambda: is_ours(pid_of(store, "t/g"), "t/g"))
    supervisor_pid = int(subprocess.check_output(["pgrep", "-f", f"supervisor {paths.root.resolve()}"]).split()[0])
    os.kill(supervisor_pid, signal.SIGKILL)
    wait_for(lambda: not running(paths))
    child = pid_of(store, "t/g")
    os.kill(child, signal.SIGKILL)  # type: ignore[arg-type]
    wait_for(lambda: not is_ours(child, "t/g"))
    shown = json.loads(mlspec("status", str(paths.root.parent), "--json").stdout)
    assert [p["state"] for p in shown["processes"] if p["id"] == "t/g"] == ["exited"]

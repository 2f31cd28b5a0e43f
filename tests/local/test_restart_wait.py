"""Waiting for health with the real supervisor: a replica in its restart backoff is waited for, not failed at once,
while one that crashes during the wait fails it with its own words."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mlspec.backends.local.context import StepFailed
from mlspec.backends.local.health import wait_healthy
from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.processes import free_port
from mlspec.backends.local.state import ProcessRow, StateStore
from mlspec.backends.local.supervisor_start import ensure_running
from tests.local.conftest import wait_for

pytestmark = pytest.mark.e2e
FAKE = Path(__file__).resolve().parents[1] / "runtime" / "fake_replica.py"



def declare(paths: WorkspacePaths, store: StateStore) -> ProcessRow:
    """A replica that exits 1, saying why, while DIR/broken exists (as one whose model fails its check does)."""
    port = free_port()
    broken = paths.root / "broken"
    script = (f"test -e {broken} && {{ echo 'mlspec-serve: error: the model files changed'; exit 1; }}; "
              f"exec {sys.executable} {FAKE} --port {port} --state {paths.root}")
    row = ProcessRow(id="t/replica", owner="t", argv=["sh", "-c", script], env={}, cwd=str(paths.root),
                     log=str(paths.logs / "replica.log"), health=f"http://127.0.0.1:{port}/health")
    store.want_process(row)
    ensure_running(paths)
    ctx = context(paths, store)
    wait_healthy(ctx, [row.id], 20)
    return row


def context(paths: WorkspacePaths, store: StateStore) -> Any:
    return SimpleNamespace(store=store, paths=paths, stop=threading.Event())


def current(store: StateStore) -> ProcessRow:
    return next(r for r in store.processes() if r.id == "t/replica")


def kill_and_wait_for_backoff(store: StateStore) -> None:
    pid = current(store).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: current(store).state == "restarting", 10)


def test_a_wait_issued_while_a_replica_restarts_waits_for_it(workspace: tuple[WorkspacePaths, StateStore]) -> None:
    paths, store = workspace
    row = declare(paths, store)
    kill_and_wait_for_backoff(store)
    started = time.monotonic()
    wait_healthy(context(paths, store), [row.id], 20)  # raised at once before: "exited with -9 before ..."
    assert current(store).state == "running" and current(store).restarts == 1
    assert time.monotonic() - started < 10


def test_a_crash_while_waited_for_fails_the_wait_with_the_replicas_words(
        workspace: tuple[WorkspacePaths, StateStore]) -> None:
    paths, store = workspace
    row = declare(paths, store)
    (paths.root / "broken").touch()
    kill_and_wait_for_backoff(store)
    started = time.monotonic()
    with pytest.raises(StepFailed, match=r"(?s)exited with 1 before becoming healthy.*the model files changed"):
        wait_healthy(context(paths, store), [row.id], 60)
    assert time.monotonic() - started < 15  # at its next crash, not at the deadline

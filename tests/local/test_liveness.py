"""Liveness probes with the real supervisor: a process that stops answering without exiting is restarted."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.processes import free_port, is_ours
from mlspec.backends.local.state import ProcessRow, StateStore
from mlspec.backends.local.supervisor_start import ensure_running
from tests.local.conftest import wait_for

pytestmark = pytest.mark.e2e
FAKE = Path(__file__).resolve().parents[1] / "runtime" / "fake_replica.py"




def replica(paths: WorkspacePaths, failure_threshold: int) -> tuple[ProcessRow, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    row = ProcessRow(id="t/replica", owner="t", argv=[sys.executable, str(FAKE), "--port", str(port), "--state",
                                                      str(paths.root)],
                     env={}, cwd=str(paths.root), log=str(paths.logs / "replica.log"), health=f"{url}/health",
                     policy={"liveness": {"url": f"{url}/health", "initial_delay": 0.5, "period": 0.3,
                                          "timeout": 0.3, "failure_threshold": failure_threshold,
                                          "success_threshold": 1}})
    return row, url


def row_of(store: StateStore) -> ProcessRow:
    return next(r for r in store.processes() if r.id == "t/replica")


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_a_replica_that_stops_answering_is_restarted_after_failure_threshold(
        workspace: tuple[WorkspacePaths, StateStore]) -> None:
    paths, store = workspace
    row, url = replica(paths, failure_threshold=4)
    store.want_process(row)
    ensure_running(paths)
    wait_for(lambda: answers(url))
    first = row_of(store).pid
    assert first is not None
    time.sleep(2)  # probes that pass restart nothing
    assert row_of(store).pid == first and row_of(store).restarts == 0

    os.kill(first, signal.SIGSTOP)  # alive, but answers nothing: only a liveness probe can tell
    stopped = time.monotonic()
    wait_for(lambda: row_of(store).pid not in (None, first), 20)
    assert time.monotonic() - stopped >= 0.9  # not before four probes 0.3 s apart have failed
    assert row_of(store).restarts == 1
    assert any("failed its liveness probe" in message for _, _, message in store.events("t"))
    wait_for(lambda: answers(url))  # the new process serves again
    assert not is_ours(first, "t/replica")


def test_without_a_liveness_policy_a_hung_process_is_left_alone(workspace: tuple[WorkspacePaths, StateStore]) -> None:
    paths, store = workspace
    row, url = replica(paths, failure_threshold=1)
    row.policy = {}
    store.want_process(row)
    ensure_running(paths)
    wait_for(lambda: answers(url))
    first = row_of(store).pid
    assert first is not None
    os.kill(first, signal.SIGSTOP)
    time.sleep(2)
    assert row_of(store).pid == first and row_of(store).restarts == 0


def test_start_up_waits_for_success_threshold_passes_in_a_row(workspace: tuple[WorkspacePaths, StateStore]) -> None:
    from types import SimpleNamespace

    from mlspec.backends.local.health import wait_healthy

    paths, store = workspace
    row, _ = replica(paths, failure_threshold=100)
    (paths.root / "unready").touch()  # /health answers 503 until the file goes
    store.want_process(row)
    ensure_running(paths)
    wait_for(lambda: row_of(store).state == "running")
    ctx: Any = SimpleNamespace(store=store, paths=paths, stop=threading.Event())
    timer = threading.Timer(1.0, (paths.root / "unready").unlink)
    timer.start()
    started = time.monotonic()
    wait_healthy(ctx, ["t/replica"], 20, successes=6)
    assert time.monotonic() - started >= 1.0 + 0.5  # ready at 1 s, then six passes 0.1 s apart
    timer.join()

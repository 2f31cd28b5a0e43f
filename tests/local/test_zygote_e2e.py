"""Warm forks with the real supervisor: later replicas of a kind are forked from its zygote, are the supervisor's
own (exit status, restarts, marks, logs), and neither they nor the zygote outlive what declared them."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from mlspec.backends.local.health import healthy
from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.processes import ID_VAR, free_port, is_ours, marked_processes, owned_processes
from mlspec.backends.local.state import ProcessRow, StateStore
from mlspec.backends.local.supervisor import start_marker
from mlspec.backends.local.supervisor_start import ensure_running, python_command
from mlspec.backends.local.zygotes import LINGER_VAR, ZYGOTE
from mlspec.runtime.procfs import stat_fields
from tests.local.conftest import mlspec, status, wait_for
from tests.runtime.test_serving_support import MODEL, IrisStore, shared_store

pytestmark = pytest.mark.e2e
LINGER_S = 4.0


@pytest.fixture(scope="module")
def iris_store(tmp_path_factory: pytest.TempPathFactory) -> IrisStore:
    return shared_store(tmp_path_factory)


def parent(pid: int) -> int:
    fields = stat_fields(pid)
    assert fields is not None, f"process {pid} is gone"
    return int(fields[1])


def alive(pid: int) -> bool:
    fields = stat_fields(pid)
    return fields is not None and fields[0] != b"Z"


def zygote_log(logs: Path) -> str:
    return "".join(path.read_text() for path in logs.glob("zygote-*.log"))


def zygote_pid(logs: Path) -> int | None:
    found = re.findall(r"ready on .* \(pid (\d+)\)", zygote_log(logs))
    return int(found[-1]) if found else None


def forked(logs: Path, pid: int, process_id: str) -> bool:
    return f"forked replica {pid} ({process_id})" in zygote_log(logs)


def replica(paths: WorkspacePaths, iris_store: IrisStore, index: int) -> ProcessRow:
    port = free_port()
    argv = python_command("mlspec.runtime.serving", "--model-uri", f"models:/{MODEL}/1", "--tracking-uri",
                          iris_store.tracking_uri, "--port", str(port))
    return ProcessRow(id=f"t/blue/{index}", owner="t", argv=argv, env={}, cwd=str(paths.proc),
                      log=str(paths.logs / f"blue-{index}.log"), health=f"http://127.0.0.1:{port}/health")


def row_of(store: StateStore, process_id: str) -> ProcessRow:
    return next(r for r in store.processes() if r.id == process_id)


def predict(health: str, iris_store: IrisStore) -> list[object]:
    body = json.dumps({"dataframe_split": {"columns": list(iris_store.features.columns),
                                           "data": iris_store.features.head(3).values.tolist()}}).encode()
    request = urllib.request.Request(health.replace("/health", "/invocations"), body,
                                     {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())["predictions"]  # type: ignore[no-any-return]


def test_later_replicas_are_forked_owned_restarted_and_stopped(
        workspace: tuple[WorkspacePaths, StateStore], iris_store: IrisStore, monkeypatch: pytest.MonkeyPatch) -> None:
    paths, store = workspace
    monkeypatch.setenv(LINGER_VAR, str(LINGER_S))  # the supervisor started below reads it
    keeper = ProcessRow(id="t/keeper", owner="t", argv=["sleep", "600"], env={}, cwd=str(paths.proc),
                        log=str(paths.logs / "keeper.log"), health=None)
    first = replica(paths, iris_store, 0)
    store.want_process(keeper)
    store.want_process(first)
    ensure_running(paths)
    wait_for(lambda: healthy(str(first.health)), 90)  # started afresh while its zygote warms
    supervisor = parent(int(row_of(store, first.id).pid or 0))
    wait_for(lambda: zygote_pid(paths.logs) is not None, 90)
    zygote = zygote_pid(paths.logs)
    assert zygote is not None and parent(zygote) == supervisor
    workspace_id = str(paths.root.resolve())
    assert marked_processes(workspace_id, ZYGOTE) == [zygote]
    assert zygote not in owned_processes(workspace_id)  # part of the supervisor: no row declares it

    second = replica(paths, iris_store, 1)
    declared = time.monotonic()
    store.want_process(second)
    ensure_running(paths)  # wakes the supervisor
    wait_for(lambda: healthy(str(second.health), timeout=0.2), 30)
    took = time.monotonic() - declared
    pid = row_of(store, second.id).pid
    assert pid is not None and forked(paths.logs, pid, second.id)
    assert took < 1.0, f"the forked replica took {took:.2f}s from declared to ready"
    assert parent(pid) == supervisor  # inherited: the zygote's first child has exited
    assert is_ours(pid, second.id) and owned_processes(str(paths.root.resolve()))[pid] == (second.id, "supervisor")
    assert os.getpgid(pid) == pid
    started = row_of(store, second.id).started
    assert started is not None and start_marker(second.id, started) in Path(second.log).read_text()
    assert predict(str(second.health), iris_store) == iris_store.expected(iris_store.features.head(3))

    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: row_of(store, second.id).restarts == 1, 10)
    assert row_of(store, second.id).last_exit == -signal.SIGKILL  # its real status, not "gone"
    wait_for(lambda: row_of(store, second.id).pid not in (None, pid) and healthy(str(second.health)), 30)
    again = row_of(store, second.id).pid
    assert again is not None and forked(paths.logs, again, second.id) and parent(again) == supervisor
    assert f"==> mlspec: {second.id} exited with -9" in Path(second.log).read_text()

    os.kill(zygote, signal.SIGKILL)  # a replica never fails to start for want of its zygote
    third = replica(paths, iris_store, 2)
    store.want_process(third)
    ensure_running(paths)
    wait_for(lambda: healthy(str(third.health)), 90)
    wait_for(lambda: zygote_pid(paths.logs) not in (None, zygote), 90)  # and another is started
    zygote = zygote_pid(paths.logs)
    assert zygote is not None and parent(zygote) == supervisor

    pids = [row_of(store, r.id).pid for r in (first, second, third)]
    for row in (first, second, third):
        store.observe(row.id, desired=0)
    ensure_running(paths)
    wait_for(lambda: not any(p.id.startswith("t/blue/") for p in store.processes()), 30)
    assert not any(alive(int(p or 0)) for p in pids)
    assert alive(zygote)  # kept a while: a scale-up from zero forks too
    wait_for(lambda: not alive(zygote), LINGER_S + 10)
    assert alive(int(row_of(store, keeper.id).pid or 0))  # the supervisor itself goes on


def test_an_endpoints_replica_within_limits_is_forked_after_a_crash_and_down_leaves_nothing(iris: Path) -> None:
    # examples/iris runs its replicas on a compute of 1 core and 2Gi: under the node launcher, forked with it.
    mlspec("up", str(iris), "--yes")
    paths = WorkspacePaths(iris / ".mlspec")
    store = StateStore(paths.state_db)
    wait_for(lambda: zygote_pid(paths.logs) is not None, 90)
    zygote = zygote_pid(paths.logs)
    assert zygote is not None
    [blue] = [r for r in store.processes() if "/blue/" in r.id]
    assert blue.pid is not None
    supervisor = parent(blue.pid)

    os.kill(blue.pid, signal.SIGKILL)
    wait_for(lambda: row_of(store, blue.id).restarts == 1, 10)
    assert row_of(store, blue.id).last_exit == -signal.SIGKILL
    wait_for(lambda: row_of(store, blue.id).pid not in (None, blue.pid) and healthy(str(blue.health)), 30)
    launcher = row_of(store, blue.id).pid
    assert launcher is not None and forked(paths.logs, launcher, blue.id) and parent(launcher) == supervisor
    [server] = [int(p) for p in Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()]
    assert len(os.sched_getaffinity(server)) == 1  # pinned by its launcher, as a node started afresh is
    environ = Path(f"/proc/{server}/environ").read_bytes()
    assert b"OMP_NUM_THREADS=1\0" in environ and f"{ID_VAR}=".encode() not in environ  # the launcher's alone

    outputs = status(iris)["resources"]["endpoint/iris"]["outputs"]
    key = json.loads(mlspec("endpoint", "keys", "iris", str(iris), "--json").stdout)["primary"]
    body = json.dumps({"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": [[5.1, 3.5, 1.4, 0.2]]}})
    request = urllib.request.Request(f"{outputs['url']}/invocations", body.encode(), {
        "content-type": "application/json", "authorization": f"Bearer {key}", "x-mlspec-deployment": "blue"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200 and json.loads(answer.read())["predictions"] == [0]

    mlspec("down", str(iris), "--yes")
    assert owned_processes(str(paths.root.resolve())) == {}
    assert marked_processes(str(paths.root.resolve()), ZYGOTE) == []
    assert not any(alive(pid) for pid in (zygote, launcher, server))

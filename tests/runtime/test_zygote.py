"""Warm fork: a zygote forks replicas that serve, carry their own marks in /proc, and stop by their own group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlspec.backends.local.processes import ID_VAR, STARTED_BY_VAR, WORKSPACE_VAR, is_ours, owned_processes, stop_group
from mlspec.runtime.serving.zygote import fork_replica
from tests.runtime.test_serving_support import MODEL, IrisStore, free_port, shared_store

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> IrisStore:
    return shared_store(tmp_path_factory)


@pytest.fixture
def zygote(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, str]]:
    workspace = str(tmp_path / "ws")
    socket_path = tmp_path / "zygote.sock"
    # The marks come first here: the zygote must move them last itself.
    env = {WORKSPACE_VAR: workspace, ID_VAR: "zygote-sklearn", STARTED_BY_VAR: "supervisor",
           "PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    log = (tmp_path / "zygote.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "mlspec.runtime.serving.zygote", "--socket", str(socket_path)],
                               env=env, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 90
    while not socket_path.exists():
        assert process.poll() is None, (tmp_path / "zygote.log").read_text()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        yield process, socket_path, workspace
    finally:
        stop_group(process.pid, grace=2.0)
        process.wait(5)
        log.close()


def _ready(port: int, deadline: float) -> None:
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the forked replica never became ready"
        time.sleep(0.01)


def test_forked_replica_serves_with_its_own_identity(iris: IrisStore, zygote: tuple[subprocess.Popen[bytes], Path,
                                                                                     str], tmp_path: Path) -> None:
    process, socket_path, workspace = zygote
    assert is_ours(process.pid, "zygote-sklearn")
    port = free_port()
    started = time.monotonic()
    pid = fork_replica(socket_path, ["--model-uri", f"models:/{MODEL}/1", "--tracking-uri", iris.tracking_uri,
                                     "--port", str(port)],
                       {ID_VAR: "endpoint-blue-0", STARTED_BY_VAR: "supervisor"}, log=str(tmp_path / "replica.log"))
    _ready(port, started + 30)
    assert is_ours(pid, "endpoint-blue-0") and not is_ours(pid, "zygote-sklearn")
    assert is_ours(process.pid, "zygote-sklearn")  # the zygote keeps its own
    assert owned_processes(workspace) == {process.pid: ("zygote-sklearn", "supervisor"),
                                          pid: ("endpoint-blue-0", "supervisor")}
    assert os.getpgid(pid) == pid  # its own group: stopping it leaves the zygote
    body = json.dumps({"dataframe_split": {"columns": list(iris.features.columns),
                                           "data": iris.features.head(3).values.tolist()}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body,
                                     {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.loads(answer.read())["predictions"] == iris.expected(iris.features.head(3))
    stop_group(pid, grace=5.0)
    assert not is_ours(pid, "endpoint-blue-0")
    assert process.poll() is None
    second = fork_replica(socket_path, ["--model-uri", f"models:/{MODEL}/1", "--tracking-uri", iris.tracking_uri,
                                        "--port", str(port)], {ID_VAR: "endpoint-blue-1"})
    _ready(port, time.monotonic() + 30)
    assert owned_processes(workspace)[second] == ("endpoint-blue-1", "supervisor")
    stop_group(second, grace=5.0)


def test_refused_model_exits_and_is_reaped(iris: IrisStore, zygote: tuple[subprocess.Popen[bytes], Path, str],
                                           tmp_path: Path) -> None:
    process, socket_path, workspace = zygote
    pid = fork_replica(socket_path, ["--model-uri", f"models:/{MODEL}/99", "--tracking-uri", iris.tracking_uri,
                                     "--port", str(free_port())], {ID_VAR: "endpoint-blue-9"},
                       log=str(tmp_path / "refused.log"))
    # It exits. Reaping it is for whoever inherits the orphan: the supervisor, a subreaper, in the engine (see
    # tests/local/test_zygotes.py); here the machine's init, which may leave it a zombie for a while.
    deadline = time.monotonic() + 30
    while _running(pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "version" in (tmp_path / "refused.log").read_text()
    assert process.poll() is None and list(owned_processes(workspace)) == [process.pid]


def _running(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie (an exited process its new parent has not reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False

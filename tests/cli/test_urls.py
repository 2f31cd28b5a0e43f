"""`mlspec up` prints an endpoint's or instance's URL only once it answers its health check."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlspec.backends.local.processes import free_port
from mlspec.backends.local.state import StateStore
from mlspec.cli.urls import print_urls
from mlspec.plan import Record

ROOT = Path(__file__).resolve().parents[2]


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path in ("/health", "/api") else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()


def _state(tmp_path: Path, endpoint_port: int, instance_port: int) -> Path:
    store = StateStore(tmp_path / "state.db")
    store.put(Record("endpoint/iris", "Endpoint", "0" * 64, {}, {}, {},
                     {"url": f"http://127.0.0.1:{endpoint_port}", "port": endpoint_port}, "ready"))
    store.put(Record("compute/lab", "Compute", "0" * 64, {}, {}, {},
                     {"url": f"http://127.0.0.1:{instance_port}/lab?token=t", "port": instance_port,
                      "notebooks": "/nb"}, "ready"))
    store.close()
    return tmp_path / "state.db"


def test_urls_that_answer_are_printed_and_others_are_named_as_not_answering(tmp_path: Path, server: int) -> None:
    silent = free_port()
    shown: list[str] = []
    assert print_urls(_state(tmp_path, server, silent), shown.append, wait_s=0.5) is False
    assert shown == [
        f"Endpoint iris: http://127.0.0.1:{server}/invocations  (mlspec endpoint invoke iris --data FILE)",
        f"Compute instance lab: not answering yet at http://127.0.0.1:{silent}/lab?token=t; see `mlspec status` "
        "and `mlspec logs lab`",
    ]
    shown.clear()
    assert print_urls(_state(tmp_path, server, server), shown.append, wait_s=0.5) is True
    assert shown[1] == f"Compute instance lab: http://127.0.0.1:{server}/lab?token=t  (notebooks in /nb)"


@pytest.mark.e2e
def test_a_repeated_up_prints_the_endpoint_url_once_its_restarted_gateway_answers(tmp_path: Path) -> None:
    spec = tmp_path / "iris"
    shutil.copytree(ROOT / "examples" / "iris", spec, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    env = {**os.environ, "NO_COLOR": "1"}

    def mlspec(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mlspec.cli.main", *args, str(spec)], cwd=tmp_path, env=env,
                              text=True, capture_output=True, timeout=300)

    try:
        first = mlspec("up", "--yes")
        assert first.returncode == 0, first.stdout + first.stderr
        url = next(line for line in first.stdout.splitlines() if line.startswith("Endpoint iris: "))
        processes = json.loads(mlspec("status", "--json").stdout)["processes"]
        gateway = next(p for p in processes if p["id"] == "endpoint/iris/gateway")
        os.kill(gateway["pid"], signal.SIGKILL)  # the supervisor restarts it, after a backoff
        again = mlspec("up", "--yes")
        assert again.returncode == 0, again.stdout + again.stderr
        assert url in again.stdout.splitlines(), again.stdout
    finally:
        mlspec("down", "--yes")


def test_a_stopped_instance_is_named_as_stopped_without_waiting(tmp_path: Path, server: int) -> None:
    from mlspec.backends.local.state import ProcessRow

    state_db = _state(tmp_path, server, free_port())
    store = StateStore(state_db)
    store.want_process(ProcessRow("compute/lab/jupyter", "compute/lab", ["true"], {}, ".", "lab.log", None))
    store.observe("compute/lab/jupyter", state="stopped")
    store.close()
    shown: list[str] = []
    assert print_urls(state_db, shown.append, wait_s=30) is True  # no wait: nothing left to answer
    assert shown == ["Compute instance lab: stopped (mlspec compute start lab)",
                     f"Endpoint iris: http://127.0.0.1:{server}/invocations  (mlspec endpoint invoke iris --data FILE)"]

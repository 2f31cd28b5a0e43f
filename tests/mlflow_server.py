"""A real MLflow tracking server as a process of its own (sqlite store, proxied artifacts), for tests whose code
talks to a tracking server over HTTP as a workspace's or a team's would."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def mlflow_server(store: Path, host: str = "127.0.0.1", start_s: float = 120) -> Iterator[str]:
    """Serve `store` on a free port of `host`; its URI while the block runs. The server runs in its own process
    group, so stopping it stops the workers it started too."""
    (store / "artifacts").mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        probe.bind((host, 0))
        port = int(probe.getsockname()[1])
    log = store / "server.log"
    extra = [] if host == "127.0.0.1" else ["--allowed-hosts", f"{host}:{port},{host}"]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{store}/mlflow.db", "--serve-artifacts", "--artifacts-destination",
         str(store / "artifacts"), *extra],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"), start_new_session=True)
    uri = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + start_s
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"MLflow did not start: {log.read_text()[-2000:]}")
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)

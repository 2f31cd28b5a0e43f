"""JupyterLab started with the command the Docker and Kubernetes targets give an instance exits 0 by itself once
idle (what leaves an idle instance's container stopped): a real server, its own idle check."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mlspec.runtime import servers
from tests.runtime.test_serving_support import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def test_an_idle_jupyterlab_exits_zero_within_a_minute_of_its_idle_time(tmp_path: Path) -> None:
    port = free_port()
    command = servers.jupyter_lab(str(tmp_path / "notebooks"), servers.jupyter_password_hash("pw", "ws", "box"),
                                  port, idle_shutdown=2)
    command[-1] = command[-1].replace("--ip 0.0.0.0", "--ip 127.0.0.1")
    if os.geteuid() == 0:  # the containers run it as the mlspec user; a test machine may be root
        command[-1] += " --allow-root"
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "HOME": str(tmp_path)}
    with (tmp_path / "lab.log").open("wb") as log:
        lab = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:  # it serves first
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=2) as answer:
                    assert answer.status == 200
                break
            except OSError:
                assert lab.poll() is None and time.monotonic() < deadline, (tmp_path / "lab.log").read_text()
                time.sleep(0.5)
        started = time.monotonic()
        assert lab.wait(timeout=150) == 0, (tmp_path / "lab.log").read_text()
        assert time.monotonic() - started < 2 + 60 + 30  # its idle time, its once-a-minute check, and slack
        assert "shutting down" in (tmp_path / "lab.log").read_text()
    finally:
        if lab.poll() is None:
            lab.kill()

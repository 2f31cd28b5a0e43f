"""A compute instance is a supervised JupyterLab; stop/start keep it declared; notebooks outlive it; its
environment is its kernel; it stops itself when idle."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from mlspec.backends.local.state import ProcessRow, StateStore
from tests.local.conftest import mlspec, status

pytestmark = pytest.mark.e2e

SPEC = """\
kind: Workspace
name: notebooks
---
kind: Compute
name: dev
type: instance
"""


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_instance_lifecycle_keeps_notebooks(tmp_path: Path) -> None:
    (tmp_path / "mlspec.yaml").write_text(SPEC)
    try:
        mlspec("up", str(tmp_path), "--yes")
        outputs = status(tmp_path)["resources"]["compute/dev"]["outputs"]
        api = f"http://127.0.0.1:{outputs['port']}/api/status?token={outputs['token']}"
        assert answers(api)
        notebook = Path(outputs["notebooks"]) / "analysis.ipynb"
        notebook.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))

        mlspec("compute", "stop", "dev", str(tmp_path))
        assert not answers(api)
        assert "No changes" in mlspec("up", str(tmp_path), "--yes").stdout  # a stopped instance stays stopped
        mlspec("compute", "start", "dev", str(tmp_path))
        deadline_ok = any(answers(api) or __import__("time").sleep(0.5) for _ in range(60))
        assert deadline_ok

        mlspec("down", str(tmp_path), "--yes")
        assert not answers(api)
        assert notebook.exists()  # deleting the instance loses no notebook
    finally:
        mlspec("down", str(tmp_path), "--yes", check=False)


WITH_ENVIRONMENT = """\
kind: Workspace
name: notebooks
---
kind: Environment
name: nbenv
requirements: [{requirements}]
environment_variables: {{NB_FLAG: on}}
---
kind: Compute
name: dev
type: instance
environment: nbenv
"""


def jupyter_row(spec: Path) -> ProcessRow:
    store = StateStore(spec / ".mlspec" / "state.db")
    try:
        return next(r for r in store.processes("compute/dev") if r.desired)
    finally:
        store.close()


def run_in_kernel(share: Path, name: str, code: str) -> str:
    """Start the kernel as Jupyter does (its kernelspec's argv), run `code`, return what it printed."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    manager = KernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(share)]))
    manager.start_kernel()
    client = manager.client()
    try:
        client.start_channels()
        client.wait_for_ready(timeout=60)
        printed: list[str] = []
        client.execute_interactive(code, timeout=60, output_hook=lambda m: printed.append(
            m["content"].get("text", "")) if m["msg_type"] == "stream" else None)
        return "".join(printed)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def api(outputs: dict, path: str) -> object:  # type: ignore[type-arg]
    url = f"http://127.0.0.1:{outputs['port']}{path}?token={outputs['token']}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_the_environment_is_the_kernel_and_changing_it_restarts_the_instance(tmp_path: Path) -> None:
    spec = tmp_path / "mlspec.yaml"
    spec.write_text(WITH_ENVIRONMENT.format(requirements="numpy"))
    try:
        mlspec("up", str(tmp_path), "--yes")
        resources = status(tmp_path)["resources"]
        outputs, python = resources["compute/dev"]["outputs"], resources["environment/nbenv"]["outputs"]["python"]
        assert outputs["kernel"] == "nbenv"
        share = tmp_path / ".mlspec" / "instances" / "dev" / "share" / "kernels"
        kernelspec = json.loads((share / "nbenv" / "kernel.json").read_text())
        assert kernelspec["argv"][0] == python and "/envs/" in python
        printed = run_in_kernel(share, "nbenv", "import os, sys; print(sys.executable, os.environ['NB_FLAG'])")
        assert printed.split() == [python, "on"]
        # JupyterLab offers that kernel alone, and starts it by default.
        specs = api(outputs, "/api/kernelspecs")
        assert specs["default"] == "nbenv" and list(specs["kernelspecs"]) == ["nbenv"]  # type: ignore[index]
        first = jupyter_row(tmp_path).pid

        spec.write_text(WITH_ENVIRONMENT.format(requirements="numpy, pyyaml"))  # another environment
        mlspec("up", str(tmp_path), "--yes")
        changed = status(tmp_path)["resources"]["environment/nbenv"]["outputs"]["python"]
        assert changed != python
        assert json.loads((share / "nbenv" / "kernel.json").read_text())["argv"][0] == changed
        assert jupyter_row(tmp_path).pid not in (None, first)  # JupyterLab was restarted for it
        assert answers(f"http://127.0.0.1:{outputs['port']}/api/status?token={outputs['token']}")
    finally:
        mlspec("down", str(tmp_path), "--yes", check=False)


IDLE = SPEC + "idle_time_before_shutdown: 4s\n"


def test_an_idle_instance_stops_and_compute_start_brings_it_back(tmp_path: Path) -> None:
    (tmp_path / "mlspec.yaml").write_text(IDLE)
    try:
        mlspec("up", str(tmp_path), "--yes")
        outputs = status(tmp_path)["resources"]["compute/dev"]["outputs"]
        api_status = f"http://127.0.0.1:{outputs['port']}/api/status?token={outputs['token']}"
        busy_until = time.monotonic() + 6
        while time.monotonic() < busy_until:  # activity (API requests) keeps it running past the idle time
            api(outputs, "/api/contents")
            time.sleep(1)
        assert jupyter_row(tmp_path).state == "running"

        deadline = time.monotonic() + 30
        while jupyter_row(tmp_path).state != "stopped":
            assert time.monotonic() < deadline, "the idle instance was not stopped"
            time.sleep(0.5)
        assert not answers(api_status) and jupyter_row(tmp_path).pid is None
        assert "No changes" in mlspec("up", str(tmp_path), "--yes").stdout  # stopped stays stopped

        mlspec("compute", "start", "dev", str(tmp_path))
        assert any(answers(api_status) or time.sleep(0.5) for _ in range(60))
    finally:
        mlspec("down", str(tmp_path), "--yes", check=False)

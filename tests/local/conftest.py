"""Fixtures for end-to-end tests of the local engine: a private copy of an example and the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.processes import is_ours
from mlspec.backends.local.state import StateStore
from mlspec.backends.local.supervisor_start import ensure_running, running

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def mlspec(*args: str, cwd: Path | None = None, check: bool = True,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a fresh process, as a user would."""
    env = {**os.environ, "NO_COLOR": "1"}
    result = subprocess.run([sys.executable, "-m", "mlspec.cli.main", *args], cwd=cwd, env=env, text=True,
                            capture_output=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"mlspec {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def status(spec: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(mlspec("status", str(spec), "--json").stdout)  # type: ignore[no-any-return]


@pytest.fixture
def iris(tmp_path: Path) -> Iterator[Path]:
    """examples/iris copied to a temporary folder; `mlspec down` afterwards so no process outlives the test."""
    target = tmp_path / "iris"
    shutil.copytree(EXAMPLES / "iris", target, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    yield target
    mlspec("down", str(target), "--yes", check=False)


def wait_for(condition: Callable[[], object], timeout: float = 15.0) -> None:
    """Poll `condition` until it holds; fail the test when it has not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[tuple[WorkspacePaths, StateStore]]:
    """A bare workspace and its state store; afterwards every process the test declared (owner "t") is stopped,
    stopped ones resumed first, and the supervisor has exited."""
    paths = WorkspacePaths(tmp_path / ".mlspec")
    paths.create()
    store = StateStore(paths.state_db)
    yield paths, store
    store = StateStore(paths.state_db)  # the test may have replaced the file
    for row in store.processes():
        if row.pid and is_ours(row.pid, row.id):
            os.kill(row.pid, signal.SIGCONT)  # a SIGSTOPped process could not stop on SIGTERM
        store.observe(row.id, desired=0)
    if store.processes():
        ensure_running(paths)
        wait_for(lambda: not store.processes(), 20)
    wait_for(lambda: not running(paths), 10)

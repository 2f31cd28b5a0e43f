"""Fixtures for end-to-end tests of the local engine: a private copy of an example and the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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

"""A compute instance is a supervised JupyterLab; stop/start keep it declared; notebooks outlive it."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

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

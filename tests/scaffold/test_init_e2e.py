"""`mlspec init` through the real command line in an empty folder: the project validates and plans at once, and
`mlspec init ci` adds its workflow, again and again without change."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _mlspec(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "mlspec.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.e2e
def test_init_then_validate_and_plan_in_a_fresh_folder(tmp_path: Path) -> None:
    made = _mlspec(tmp_path, "init", "fraud-model", "--template", "sklearn")
    assert made.returncode == 0, made.stderr
    assert "Project 'fraud-model' (sklearn) is ready" in made.stdout
    project = tmp_path / "fraud-model"

    validated = _mlspec(project, "validate")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert validated.stdout.strip() == "valid: 6 resources in 1 file"

    planned = _mlspec(project, "plan", "--detailed-exitcode")
    assert planned.returncode == 2, planned.stdout + planned.stderr  # everything is still to create
    assert "+ job/train" in planned.stdout and "+ model/fraud-model-clf:1" in planned.stdout
    assert not (project / ".mlspec").exists(), "plan changed nothing"

    refused = _mlspec(tmp_path, "init", "fraud-model", "--template", "torch")
    assert refused.returncode == 2 and "would be overwritten" in refused.stderr and "--force" in refused.stderr

    for _ in range(2):
        ci = _mlspec(project, "init", "ci")
        assert ci.returncode == 0, ci.stderr
    assert "nothing to write" in ci.stdout
    assert (project / ".github" / "workflows" / "mlspec.yml").is_file()

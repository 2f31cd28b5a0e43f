"""Ctrl-C during `mlspec up`: the first stops the jobs in flight cleanly and records what completed; a second
exits at once. Either way no job process is left and the lock is released."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlspec.backends.local.processes import workspace_processes

pytestmark = pytest.mark.e2e

SPEC = """\
kind: Workspace
name: interrupt-demo
---
kind: Compute
name: cpu
type: cluster
max_nodes: 2
---
kind: Job
name: quick
code: src/
compute: cpu
command: python -c "print('quick done')"
---
kind: Job
name: slow
code: src/
compute: cpu
# It takes its time to stop (SIGTERM ignored until the kill after the grace period), so a second Ctrl-C lands
# while the first is still stopping it.
command: >-
  python -c "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);
  print('slow started', flush=True); time.sleep(300)"
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "noop.py").write_text("")
    (tmp_path / "mlspec.yaml").write_text(SPEC)
    return tmp_path


def _up_until_slow_runs(spec: Path) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen([sys.executable, "-m", "mlspec.cli.main", "up", "--yes", str(spec)], cwd=spec,
                               env={**os.environ, "NO_COLOR": "1"}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while not any("✓ job/quick" in line for line in seen) or not any("slow started" in line for line in seen):
        line = process.stdout.readline()
        assert line and time.monotonic() < deadline, "".join(seen)
        seen.append(line)
    return process, seen


def _communicate(process: subprocess.Popen[str], timeout: float) -> str:
    try:
        return process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        process.kill()  # leave nothing behind when `up` hangs
        raise


def _mlspec(spec: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlspec.cli.main", *args, str(spec)], cwd=spec, text=True,
                          capture_output=True, env={**os.environ, "NO_COLOR": "1"}, timeout=120)


def _runs(spec: Path) -> dict[str, str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{spec / '.mlspec' / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return {r.data.tags["mlspec.job"]: r.info.status for r in client.search_runs(experiments)}


def test_the_first_ctrl_c_stops_cleanly_and_records_what_completed(spec: Path) -> None:
    process, seen = _up_until_slow_runs(spec)
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    out = _communicate(process, 60)
    took = time.monotonic() - started
    text = "".join(seen) + out
    assert process.returncode == 130, text
    assert took < 20, f"the clean stop took {took:.1f}s"
    assert "Traceback" not in text, text
    assert "mlspec: interrupted: 2 step(s) completed and recorded; stopped job/slow" in text, text
    assert "the next `mlspec up` plans again" in text
    assert not workspace_processes(str((spec / ".mlspec").resolve())), "a job process outlived `up`"
    assert _runs(spec) == {"quick": "FINISHED", "slow": "KILLED"}
    changes = [line.split()[:2] for line in _mlspec(spec, "plan").stdout.splitlines() if line.startswith("  ")]
    assert ["~", "job/slow"] in changes or ["+", "job/slow"] in changes, changes
    assert not any(rid in ("job/quick", "compute/cpu") for _, rid in changes), changes  # recorded as done
    relock = _mlspec(spec, "down", "--yes")  # takes the workspace lock: released by the interrupted up
    assert relock.returncode == 0, relock.stderr


def test_a_second_ctrl_c_exits_at_once_and_leaves_no_job_behind(spec: Path) -> None:
    process, seen = _up_until_slow_runs(spec)
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    out = _communicate(process, 30)
    took = time.monotonic() - started
    text = "".join(seen) + out
    assert process.returncode == 130, text
    assert took < 3, f"the second Ctrl-C took {took:.1f}s to exit"
    assert "mlspec: stopped at once" in text and "Traceback" not in text, text
    deadline = time.monotonic() + 5
    while workspace_processes(str((spec / ".mlspec").resolve())) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not workspace_processes(str((spec / ".mlspec").resolve())), "a job process outlived `up`"
    spec_file = spec / "mlspec.yaml"
    spec_file.write_text(spec_file.read_text().replace("time.sleep(300)", "time.sleep(0)"))
    again = _mlspec(spec, "up", "--yes")  # the lock is free, and the run left RUNNING is closed
    assert again.returncode == 0, again.stdout + again.stderr
    assert "marked run" in again.stdout and "as killed" in again.stdout, again.stdout

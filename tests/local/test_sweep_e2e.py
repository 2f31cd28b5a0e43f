"""Sweeps through the real CLI: trials as MLflow child runs, the best model registered with its parameters, an
unchanged sweep not re-run, a sweep resumed after `kill -9` of `up` without re-running finished trials, and a trial
stopped early by its intermediate metric."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.local.conftest import EXAMPLES, mlspec

pytestmark = pytest.mark.e2e

# A trial that logs `score` (its x, or 0.1 for a poor one) at each step, sleeping between steps.
TRIAL = '''
import argparse, time, mlflow
p = argparse.ArgumentParser()
p.add_argument("--x", type=float); p.add_argument("--steps", type=int); p.add_argument("--pause", type=float)
a = p.parse_args()
for step in range(1, a.steps + 1):
    mlflow.log_metric("score", a.x, step=step)
    time.sleep(a.pause)
print("done", a.x)
'''

SPEC = '''
kind: Workspace
name: sweep-test
---
kind: Compute
name: cpu
type: cluster
max_nodes: 2
---
kind: Job
name: tune
type: sweep
compute: cpu
trial:
  code: src/
  command: python trial.py --x ${{{{search_space.x}}}} --steps {steps} --pause {pause}
search_space:
  x: {{type: choice, values: {values}}}
sampling_algorithm: grid
objective: {{primary_metric: score, goal: maximize}}
limits: {{max_total_trials: {trials}, max_concurrent_trials: 2}}
{extra}
'''


def _client(spec: Path):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{spec / '.mlspec' / 'mlflow.db'}")


def _child_runs(spec: Path, experiment: str) -> list:  # type: ignore[type-arg]
    client = _client(spec)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId")]


def _write(folder: Path, **fields: object) -> Path:
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "trial.py").write_text(TRIAL)
    (folder / "mlspec.yaml").write_text(SPEC.format(**{"extra": "", **fields}))
    return folder


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "sweep"
    mlspec("down", str(tmp_path / "sweep"), "--yes", check=False)


def test_example_sweep_registers_the_best_trial_and_is_not_rerun(folder: Path) -> None:
    shutil.copytree(EXAMPLES / "sweep", folder, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    spec = folder / "mlspec.yaml"
    text = spec.read_text().replace("max_total_trials: 12", "max_total_trials: 4").replace("epochs: 8", "epochs: 4")
    spec.write_text(text.replace("delay_evaluation: 4", "delay_evaluation: 2"))
    out = mlspec("up", str(folder), "--yes").stdout
    assert "registered digits-sgd:1" in out, out
    children = _child_runs(folder, "digits-sweep")
    assert len(children) == 4, out
    client = _client(folder)
    parents = {r.data.tags["mlflow.parentRunId"] for r in children}
    [parent] = parents
    assert client.get_run(parent).info.run_name == "tune"
    finished = [r for r in children if r.info.status == "FINISHED"]
    version = client.get_model_version("digits-sgd", "1")
    best = next(r for r in finished if r.info.run_id == version.run_id)  # registered from a trial's run...
    assert best.data.metrics["val_accuracy"] == max(r.data.metrics["val_accuracy"] for r in finished)  # the best
    assert version.tags["mlspec.param.loss"] == best.data.params["loss"]
    assert version.tags["mlspec.param.alpha"] == best.data.params["alpha"]
    again = mlspec("up", str(folder), "--yes").stdout
    assert "No changes" in again, again
    assert len(_child_runs(folder, "digits-sweep")) == 4


def test_killed_sweep_resumes_without_rerunning_finished_trials(folder: Path) -> None:
    _write(folder, steps=2, pause=1.0, values="[1, 2, 3, 4, 5, 6]", trials=6)
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mlspec.cli.main", "up", str(folder), "--yes"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen, deadline = [], time.monotonic() + 120
    for line in proc.stdout:
        seen.append(line)
        if "trial 3 started" in line:  # two trials finished, two running
            proc.send_signal(signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "".join(seen)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    before = {float(m.group(1)) for line in seen if (m := re.search(r"trial \d+ finished: score (\S+)", line))}
    assert len(before) >= 2, "".join(seen)

    out = mlspec("up", str(folder), "--yes").stdout
    assert f"resuming: {len(before)} of 6 trials already finished" in out, out
    children = _child_runs(folder, "sweep-test")
    finished = [r for r in children if r.info.status == "FINISHED"]
    # Each grid point ran to the end exactly once: none finished before the kill ran again.
    assert sorted(float(r.data.params["x"]) for r in finished) == [1, 2, 3, 4, 5, 6], out
    interrupted = [r for r in children if r.info.status != "FINISHED"]
    assert 1 <= len(interrupted) <= 2 and all(r.info.status == "KILLED" for r in interrupted)
    import optuna

    [summary] = optuna.get_all_study_summaries(f"sqlite:///{next((folder / '.mlspec' / 'sweeps').rglob('optuna.db'))}")
    assert summary.best_trial is not None and summary.best_trial.value == 6.0


def test_early_termination_stops_a_poor_trial_while_it_runs(folder: Path) -> None:
    _write(folder, steps=12, pause=0.5, values="[0.1, 1.0]", trials=2,
           extra="early_termination: {policy: bandit, slack_factor: 0.1, delay_evaluation: 2}")
    out = mlspec("up", str(folder), "--yes").stdout
    assert "stopped early: bandit" in out, out
    runs = {float(r.data.params["x"]): r for r in _child_runs(folder, "sweep-test")}
    poor, good = runs[0.1], runs[1.0]
    assert good.info.status == "FINISHED" and poor.info.status == "KILLED"
    assert poor.data.tags["mlspec.early_termination"].startswith("bandit: 0.1 is not within slack_factor 0.1")
    steps = [m.step for m in _client(folder).get_metric_history(poor.info.run_id, "score")]
    assert max(steps) < 12  # stopped before its end

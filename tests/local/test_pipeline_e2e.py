"""Pipelines through the real CLI: steps as MLflow child runs of the pipeline's run, the model registered from the
train step, prep reused after the train step's file changes while train and evaluate re-run, a failing step with
continue_on_step_failure false and true, a sweep step whose best trial's output a later step reads, and independent
steps running at once on a cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.local.conftest import mlspec

pytestmark = pytest.mark.e2e

PREP = '''
import argparse, pathlib
p = argparse.ArgumentParser(); p.add_argument("--rows", type=int); p.add_argument("--out"); a = p.parse_args()
out = pathlib.Path(a.out)
lines = ["x,y"] + [f"{i},{int(i % 3 == 0)}" for i in range(a.rows)]
(out / "train.csv").write_text("\\n".join(lines[: a.rows // 2 + 1]) + "\\n")
(out / "test.csv").write_text("\\n".join([lines[0], *lines[a.rows // 2 + 1:]]) + "\\n")
'''

TRAIN = '''
import argparse, pathlib, joblib, numpy as np
from sklearn.linear_model import LogisticRegression
p = argparse.ArgumentParser(); p.add_argument("--data"); p.add_argument("--model-dir"); a = p.parse_args()
rows = np.loadtxt(pathlib.Path(a.data) / "train.csv", delimiter=",", skiprows=1)
C = 1.0
model = LogisticRegression(C=C).fit(rows[:, :1], rows[:, 1])
joblib.dump(model, pathlib.Path(a.model_dir) / "model.joblib")
'''

EVALUATE = '''
import argparse, json, pathlib, joblib, mlflow, numpy as np
p = argparse.ArgumentParser()
p.add_argument("--model"); p.add_argument("--data"); p.add_argument("--report"); a = p.parse_args()
model = joblib.load(next(pathlib.Path(a.model).rglob("*.joblib")))
rows = np.loadtxt(pathlib.Path(a.data) / "test.csv", delimiter=",", skiprows=1)
accuracy = float((model.predict(rows[:, :1]) == rows[:, 1]).mean())
mlflow.log_metric("test_accuracy", accuracy)
pathlib.Path(a.report).write_text(json.dumps({"test_accuracy": accuracy}))
'''

SPEC = '''
kind: Workspace
name: pipe-test
---
kind: Compute
name: cpu
type: cluster
max_nodes: 2
---
kind: Job
name: flow
type: pipeline
experiment_name: flow
settings: {default_compute: cpu}
inputs: {rows: 24}
outputs:
  model: {type: model, register_as: flow-clf, flavor: sklearn}
jobs:
  prep:
    code: src/prep/
    command: python prep.py --rows ${{inputs.rows}} --out ${{outputs.data}}
    inputs: {rows: "${{parent.inputs.rows}}"}
    outputs: {data: {type: uri_folder}}
  train:
    code: src/train/
    command: python train.py --data ${{inputs.data}} --model-dir ${{outputs.model}}
    inputs: {data: {type: uri_folder, path: "${{parent.jobs.prep.outputs.data}}"}}
    outputs: {model: "${{parent.outputs.model}}"}
  evaluate:
    code: src/evaluate/
    command: python evaluate.py --model ${{inputs.model}} --data ${{inputs.data}} --report ${{outputs.report}}
    inputs:
      model: {type: model, path: "${{parent.jobs.train.outputs.model}}"}
      data: {type: uri_folder, path: "${{parent.jobs.prep.outputs.data}}"}
    outputs: {report: {type: uri_file}}
'''


def _client(folder: Path) -> Any:
    from mlflow import MlflowClient

    uri = f"sqlite:///{folder / '.mlspec' / 'mlflow.db'}"
    return MlflowClient(uri, registry_uri=uri)


def _runs(folder: Path, experiment: str) -> list[Any]:
    client = _client(folder)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], max_results=1000, order_by=["attributes.start_time ASC"])


def _latest_pipeline_run(folder: Path, experiment: str, name: str) -> tuple[Any, dict[str, Any]]:
    """The last run of pipeline `name` and its child runs by step."""
    runs = _runs(folder, experiment)
    parent = [r for r in runs
              if r.data.tags.get("mlspec.pipeline") == name and "mlflow.parentRunId" not in r.data.tags][-1]
    children = {r.data.tags["mlspec.pipeline.step"]: r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    return parent, children


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("pipeline") / "flow"
    for step, text in (("prep", PREP), ("train", TRAIN), ("evaluate", EVALUATE)):
        (folder / "src" / step).mkdir(parents=True)
        (folder / "src" / step / f"{step}.py").write_text(text)
    (folder / "mlspec.yaml").write_text(SPEC)
    yield folder
    mlspec("down", str(folder), "--yes", check=False)


def test_steps_run_as_child_runs_and_the_model_is_registered(flow: Path) -> None:
    out = mlspec("up", str(flow), "--yes").stdout
    assert "registered flow-clf:1" in out, out
    parent, children = _latest_pipeline_run(flow, "flow", "flow")
    assert parent.info.status == "FINISHED" and parent.info.run_name == "flow"
    assert set(children) == {"prep", "train", "evaluate"}, out
    assert all(r.info.status == "FINISHED" for r in children.values())
    # Each step ran after the one it reads: train started once prep ended, evaluate once train ended.
    assert children["train"].info.start_time >= children["prep"].info.end_time
    assert children["evaluate"].info.start_time >= children["train"].info.end_time
    assert 0.0 <= children["evaluate"].data.metrics["test_accuracy"] <= 1.0
    version = _client(flow).get_model_version("flow-clf", "1")
    assert version.run_id == children["train"].info.run_id  # registered by the train step's run
    report = next((flow / ".mlspec" / "runs" / "flow" / "steps" / "evaluate").rglob("report"))
    assert report.is_file() and "test_accuracy" in report.read_text()
    logs = mlspec("logs", "flow", str(flow)).stdout  # every step's log, each line under its step's name
    assert all(f"job 'flow.{step}' attempt 1" in logs for step in ("prep", "train", "evaluate")), logs
    assert "No changes" in mlspec("up", str(flow), "--yes").stdout


def test_editing_train_reruns_train_and_evaluate_and_reuses_prep(flow: Path) -> None:
    before, first = _latest_pipeline_run(flow, "flow", "flow")
    train = flow / "src" / "train" / "train.py"
    train.write_text(train.read_text().replace("C = 1.0", "C = 0.01"))  # another model: other bytes downstream
    plan = mlspec("plan", str(flow)).stdout
    assert "re-run train: files changed in step train (src/train/train.py)" in plan, plan
    assert "re-run evaluate: upstream train re-runs" in plan and "reuse prep (unchanged)" in plan, plan
    out = mlspec("up", str(flow), "--yes").stdout
    assert "step prep reused" in out and "registered flow-clf:2" in out, out
    parent, children = _latest_pipeline_run(flow, "flow", "flow")
    assert parent.info.run_id != before.info.run_id
    assert set(children) == {"train", "evaluate"}, out  # prep did not run again...
    assert parent.data.tags["mlspec.step.prep"] == "reused"
    assert parent.data.tags["mlspec.step.prep.run"] == first["prep"].info.run_id  # ...its earlier run stands
    assert _client(flow).get_model_version("flow-clf", "2").run_id == children["train"].info.run_id


SWEEPING = '''
kind: Job
name: tuned
type: pipeline
settings: {default_compute: cpu}
jobs:
  tune:
    type: sweep
    trial:
      code: src/sweep/
      command: python trial.py --x ${{search_space.x}} --out ${{outputs.best}}
    outputs: {best: {type: uri_folder}}
    search_space: {x: {type: choice, values: [1, 3, 2]}}
    sampling_algorithm: grid
    objective: {primary_metric: score, goal: maximize}
    limits: {max_total_trials: 3, max_concurrent_trials: 2}
  check:
    code: src/sweep/
    command: python check.py --best ${{inputs.best}} --out ${{outputs.seen}}
    inputs: {best: {type: uri_folder, path: "${{parent.jobs.tune.outputs.best}}"}}
    outputs: {seen: {type: uri_file}}
---
kind: Job
name: pair
type: pipeline
settings: {default_compute: cpu}
inputs: {meeting: MEETING}
jobs:
  left:
    code: src/sweep/
    command: python meet.py --me left --other right --at ${{inputs.at}} --out ${{outputs.out}}
    inputs: {at: "${{parent.inputs.meeting}}"}
    outputs: {out: {type: uri_folder}}
  right:
    code: src/sweep/
    command: python meet.py --me right --other left --at ${{inputs.at}} --out ${{outputs.out}}
    inputs: {at: "${{parent.inputs.meeting}}"}
    outputs: {out: {type: uri_folder}}
'''

# Two independent steps that each wait for the other to have started: they pass only if they run at once.
MEET = '''
import argparse, pathlib, sys, time
p = argparse.ArgumentParser()
for name in ("--me", "--other", "--at", "--out"):
    p.add_argument(name)
a = p.parse_args()
at = pathlib.Path(a.at); at.mkdir(parents=True, exist_ok=True); (at / a.me).touch()
deadline = time.monotonic() + 120
while not (at / a.other).exists():
    if time.monotonic() > deadline:
        sys.exit(f"{a.other} never started while {a.me} ran")
    time.sleep(0.05)
'''

TRIAL = '''
import argparse, pathlib, mlflow
p = argparse.ArgumentParser(); p.add_argument("--x", type=float); p.add_argument("--out"); a = p.parse_args()
mlflow.log_metric("score", a.x)
(pathlib.Path(a.out) / "x").write_text(str(a.x))
'''

CHECK = '''
import argparse, pathlib
p = argparse.ArgumentParser(); p.add_argument("--best"); p.add_argument("--out"); a = p.parse_args()
pathlib.Path(a.out).write_text((pathlib.Path(a.best) / "x").read_text())
'''


def test_a_sweep_step_hands_its_best_trial_to_the_next_step_and_independent_steps_run_at_once(flow: Path) -> None:
    (flow / "src" / "sweep").mkdir()
    (flow / "src" / "sweep" / "trial.py").write_text(TRIAL)
    (flow / "src" / "sweep" / "check.py").write_text(CHECK)
    (flow / "src" / "sweep" / "meet.py").write_text(MEET)
    (flow / "tuned.yaml").write_text(SWEEPING.replace("MEETING", str(flow / "meeting")))
    out = mlspec("up", str(flow), "--yes").stdout
    parent, children = _latest_pipeline_run(flow, "pipe-test", "tuned")
    assert parent.info.status == "FINISHED" and set(children) == {"tune", "check"}, out
    trials = [r for r in _runs(flow, "pipe-test")
              if r.data.tags.get("mlflow.parentRunId") == children["tune"].info.run_id]
    assert len(trials) == 3  # the sweep's trials are children of the sweep step's run
    seen = next((flow / ".mlspec" / "runs" / "tuned" / "steps" / "check").rglob("seen"))
    assert seen.read_text() == "3.0", out  # the best trial's output
    _, pair = _latest_pipeline_run(flow, "pipe-test", "pair")  # independent steps ran at once on the cluster
    assert {step: run.info.status for step, run in pair.items()} == {"left": "FINISHED", "right": "FINISHED"}, out


FAILING = '''
kind: Job
name: brittle
type: pipeline
settings: {{continue_on_step_failure: {flag}}}
jobs:
  bad:
    code: src/brittle/
    command: python step.py --fail --out ${{{{outputs.out}}}}
    outputs: {{out: {{type: uri_folder}}}}
  good:
    code: src/brittle/
    command: python step.py --out ${{{{outputs.out}}}}
    outputs: {{out: {{type: uri_folder}}}}
  after:
    code: src/brittle/
    command: python step.py --read ${{{{inputs.data}}}} --out ${{{{outputs.out}}}}
    inputs: {{data: "${{{{parent.jobs.bad.outputs.out}}}}"}}
    outputs: {{out: {{type: uri_folder}}}}
'''

STEP = '''
import argparse, pathlib, sys
p = argparse.ArgumentParser(); p.add_argument("--fail", action="store_true"); p.add_argument("--read")
p.add_argument("--out"); a = p.parse_args()
if a.fail:
    sys.exit("this step fails on purpose")
(pathlib.Path(a.out) / "done").write_text("ok")
'''


def test_a_failed_step_stops_the_rest_or_only_its_downstream(flow: Path) -> None:
    # Beside the other pipelines, in the same workspace (one tracking store for the whole file: fewer seconds).
    (flow / "src" / "brittle").mkdir()
    (flow / "src" / "brittle" / "step.py").write_text(STEP)
    brittle = flow
    # The local compute runs one step at a time: `bad` (first by name) fails before `good` could start.
    (flow / "brittle.yaml").write_text(FAILING.format(flag="false"))
    failed = mlspec("up", str(brittle), "--yes", check=False)
    assert failed.returncode != 0 and "this step fails on purpose" in failed.stdout + failed.stderr
    parent, children = _latest_pipeline_run(brittle, "pipe-test", "brittle")
    assert parent.info.status == "FAILED"
    assert {s: parent.data.tags[f"mlspec.step.{s}"] for s in ("bad", "good", "after")} == \
        {"bad": "failed", "good": "not_started", "after": "not_started"}
    assert set(children) == {"bad"}

    (flow / "brittle.yaml").write_text(FAILING.format(flag="true"))
    failed = mlspec("up", str(brittle), "--yes", check=False)
    assert failed.returncode != 0
    parent, children = _latest_pipeline_run(brittle, "pipe-test", "brittle")
    assert parent.info.status == "FAILED"  # the pipeline still fails...
    assert {s: parent.data.tags[f"mlspec.step.{s}"] for s in ("bad", "good", "after")} == \
        {"bad": "failed", "good": "succeeded", "after": "skipped"}  # ...but the independent branch ran
    assert set(children) == {"bad", "good"} and children["good"].info.status == "FINISHED"
    # The failed pipeline's record says which steps finished: the next plan re-runs only the others.
    plan = mlspec("plan", str(brittle), check=False).stdout
    assert "re-run bad: it did not finish last time" in plan and "reuse good (unchanged)" in plan, plan

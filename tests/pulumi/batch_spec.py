"""A small spec with a training job and a batch endpoint that scores the iris flowers with the model it registers."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.pulumi.conftest import compile_in_layout

ROOT = Path(__file__).resolve().parents[2]
IRIS = ROOT / "examples" / "iris"
ENDPOINT = "nightly"

SPEC = """\
kind: Workspace
name: iris-batch
defaults: {compute: cpu, environment: sklearn}
---
kind: Compute
name: cpu
type: cluster
max_nodes: 1
resources: {cpus: 1, memory: 2Gi}
---
kind: Environment
name: sklearn
requirements: [scikit-learn>=1.4, mlflow>=2.12]
---
kind: Data
name: iris
path: data/iris.csv
---
kind: Data
name: flowers
path: data/flowers.csv
---
kind: Job
name: train
code: src/
command: python train.py --data ${{inputs.data}} --algo logistic --model-dir ${{outputs.model}}
inputs: {data: data:iris}
outputs:
  model: {type: model, register_as: iris-clf, flavor: sklearn}
experiment_name: iris
---
kind: Endpoint
name: nightly
type: batch
model: iris-clf
input: data:flowers
output: {path: scores, mode: append}
mini_batch_size: 10
error_threshold: 0
retry_settings: {max_retries: 1, timeout: 20}
max_concurrency: 2
tags: {team: flowers}
"""


def batch_spec(folder: Path, spec: str = SPEC) -> Path:
    """The spec in `folder`, with the iris example's data and training code beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mlspec.yaml").write_text(spec, encoding="utf-8")
    for part in ("data", "src"):
        shutil.copytree(IRIS / part, folder / part, ignore=shutil.ignore_patterns("__pycache__"),
                        dirs_exist_ok=True)
    # The rows to score: the iris features, their species (the last column, what the model predicts) left out.
    rows = (IRIS / "data" / "iris.csv").read_text(encoding="utf-8").splitlines()
    (folder / "data" / "flowers.csv").write_text("".join(row.rsplit(",", 1)[0] + "\n" for row in rows),
                                                 encoding="utf-8")
    return folder


def compile_batch(base: Path, spec: str = SPEC) -> Path:
    """BASE/examples/iris-batch compiled to BASE/stacks/iris-batch (the repository's layout)."""
    return compile_in_layout(batch_spec(base / "examples" / "iris-batch", spec), base)

"""A workspace with two jobs of several nodes: data-parallel torch training (torchrun on each node) and a job whose
nodes each write a shard of their own (NODE_RANK, no distribution)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.pulumi.conftest import compile_in_layout

ROOT = Path(__file__).resolve().parents[2]
DDP_CODE = ROOT / "tests" / "kubernetes" / "specs" / "distributed" / "src"

SPEC = """\
kind: Workspace
name: nodes
defaults: {compute: cpu, environment: torch}
---
kind: Compute
name: cpu
type: cluster
max_nodes: 3
resources: {cpus: 1, memory: 2Gi}
---
kind: Environment
name: torch
requirements: [torch==2.13.0, mlflow>=2.12]
---
kind: Job
name: train-ddp
code: src/
command: python train.py --epochs ${{inputs.epochs}} --model-dir ${{outputs.model}}
inputs: {epochs: 3}
outputs:
  model: {type: model, register_as: ddp-mlp, flavor: torch}
resources: {instance_count: 2}
distribution: {type: pytorch, process_count_per_instance: 1}
timeout: 10m
---
kind: Job
name: shards
code: src/
command: python shard.py --out ${{outputs.part}}
outputs:
  part: {type: uri_folder}
resources: {instance_count: 3}
"""

SHARD = '''\
"""Writes this node's shard; exits with SHARD_FAIL_CODE on the node SHARD_FAIL_RANK names."""
import argparse
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--out", required=True)
args = parser.parse_args()
rank, count = os.environ["NODE_RANK"], os.environ["NODE_COUNT"]
print(f"node {rank} of {count} writes its shard", flush=True)
if os.environ.get("SHARD_FAIL_RANK") == rank:
    sys.exit(int(os.environ.get("SHARD_FAIL_CODE", "3")))
time.sleep(float(os.environ.get("SHARD_SECONDS", "0")))
with open(os.path.join(args.out, f"shard-{rank}.txt"), "w") as shard:
    shard.write(f"{rank}/{count}\\n")
'''


def nodes_spec(folder: Path, spec: str = SPEC) -> Path:
    """The spec in `folder`, with the distributed training code and the shard script beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mlspec.yaml").write_text(spec, encoding="utf-8")
    shutil.copytree(DDP_CODE, folder / "src", ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    (folder / "src" / "shard.py").write_text(SHARD, encoding="utf-8")
    return folder


def compile_nodes(base: Path, spec: str = SPEC) -> Path:
    """BASE/examples/nodes compiled for docker to BASE/stacks/nodes (the repository's layout)."""
    return compile_in_layout(nodes_spec(base / "examples" / "nodes", spec), base)

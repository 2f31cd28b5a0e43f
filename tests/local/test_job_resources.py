"""A job's nodes and distribution, and a compute's resources, honoured by `mlspec up` on this machine."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from mlspec.backends.local.processes import ID_VAR
from tests.local.conftest import mlspec, status

DDP = Path(__file__).resolve().parents[1] / "runtime" / "ddp_allreduce.py"

SPEC = """\
kind: Workspace
name: resources-demo
---
kind: Compute
name: small
type: cluster
max_nodes: 1
resources: {cpus: 1, memory: 200Mi}
---
kind: Job
name: ddp
code: src/
command: python ddp_allreduce.py ${{outputs.model}}
resources: {instance_count: 2}
distribution: {type: pytorch, process_count_per_instance: 2}
outputs: {model: {type: model, register_as: ddp-net, flavor: torch}}
---
kind: Job
name: hog
compute: small
code: src/
command: python hog.py
"""

HOG = """\
import os, time
print("cores", sorted(os.sched_getaffinity(0)), flush=True)
block = b"x" * (400 * 2**20)
print("allocated", flush=True)
time.sleep(60)
"""


@pytest.mark.e2e
def test_up_runs_a_2x2_torchrun_job_and_stops_a_job_over_its_memory_limit(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("torch")
    spec = tmp_path / "spec"
    (spec / "src").mkdir(parents=True)
    (spec / "mlspec.yaml").write_text(SPEC)
    shutil.copy(DDP, spec / "src" / DDP.name)
    (spec / "src" / "hog.py").write_text(HOG)
    # A job without an environment runs `python` from PATH: the interpreter running these tests, which has torch.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")

    up = mlspec("up", str(spec), "--yes", check=False)

    assert up.returncode == 1, up.stdout + up.stderr
    # The distributed job: 4 ranks, rank 0's model registered.
    for rank in range(4):
        assert f"[ddp] [rank{rank}]:rank {rank} of 4, local rank {rank % 2}, master port" in up.stdout
    assert "[ddp] [rank0]:rank 0 saved the model; all_reduce gave 10" in up.stdout
    assert status(spec)["resources"]["job/ddp"]["outputs"]["models"] == {"ddp-net": 1}
    # The job on the small compute: pinned to one core, stopped when it went over its 200Mi.
    assert "[hog] ==> mlspec: node 0 pinned to core(s)" in up.stdout and "(cpus: 1)" in up.stdout
    assert f"[hog] cores [{min(os.sched_getaffinity(0))}]" in up.stdout
    failure = next(line for line in up.stderr.splitlines() if line.startswith("  job/hog: "))
    assert "job 'hog' exited with code 137: the job's processes exceeded the 200Mi memory limit (peak " in failure
    mlspec("down", str(spec), "--yes")


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.e2e
def test_replicas_run_within_their_computes_cores_and_memory(iris: Path) -> None:
    # examples/iris writes out `resources: {cpus: 1, memory: 2Gi}` for the compute its deployments run on.
    mlspec("up", str(iris), "--yes")

    invoked = mlspec("endpoint", "invoke", "iris", "--data", str(iris / "request.json"), str(iris))
    assert '"predictions"' in invoked.stdout
    replicas = [p for p in status(iris)["processes"] if p["id"].startswith("endpoint/iris/") and "gate" not in p["id"]]
    assert len(replicas) == 2
    cores = sorted(os.sched_getaffinity(0))
    pinned = []
    for replica in replicas:
        launcher = replica["pid"]
        assert "mlspec.runtime.nodes" in Path(f"/proc/{launcher}/cmdline").read_text()
        server = _children(launcher)
        assert len(server) == 1 and "mlspec.runtime.serving" in Path(f"/proc/{server[0]}/cmdline").read_text()
        pinned.append(sorted(os.sched_getaffinity(server[0])))
        # One process answers to the replica's id: the launcher the supervisor started, not its server too.
        assert f"{ID_VAR}={replica['id']}".encode() in Path(f"/proc/{launcher}/environ").read_bytes()
        assert f"{ID_VAR}=".encode() not in Path(f"/proc/{server[0]}/environ").read_bytes()
    # blue's replica and green's take the cores in turn
    assert sorted(pinned) == sorted([[cores[0]], [cores[1 % len(cores)]]])


@pytest.mark.e2e
def test_a_batch_endpoint_scores_within_its_computes_cores_and_memory(tmp_path: Path) -> None:
    from tests.local.conftest import EXAMPLES
    from tests.local.test_batch_endpoint import SPEC as BATCH_SPEC

    root = tmp_path / "batch"
    shutil.copytree(EXAMPLES / "iris" / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(EXAMPLES / "iris" / "data", root / "data")
    (root / "scoring").mkdir()
    rows = (root / "data" / "iris.csv").read_text().splitlines()
    (root / "scoring" / "all.csv").write_text("\n".join(",".join(r.split(",")[:4]) for r in rows) + "\n")
    compute = "---\nkind: Compute\nname: small\ntype: cluster\nmax_nodes: 1\nresources: {cpus: 1, memory: 1Gi}\n"
    spec = BATCH_SPEC.format(python=sys.executable) + "compute: small\n" + compute
    (root / "mlspec.yaml").write_text(spec)
    try:
        up = mlspec("up", str(root), "--yes")
        outputs = status(root)["resources"]["endpoint/nightly"]["outputs"]
        assert (outputs["rows_scored"], outputs["rows_failed"]) == (150, 0)
        assert f"[nightly] ==> mlspec: node 0 pinned to core(s) {min(os.sched_getaffinity(0))} (cpus: 1)" in up.stdout
    finally:
        mlspec("down", str(root), "--yes", check=False)


def test_a_deployments_own_resources_size_its_replicas_before_its_computes(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from mlspec.backends.local.handlers.endpoint import _limits
    from mlspec.graph import load_graph

    (tmp_path / "mlspec.yaml").write_text(
        "kind: Compute\nname: serve\ntype: inference-cluster\nresources: {cpus: 2, memory: 1Gi}\n---\n"
        "kind: Model\nname: clf\npath: model.pkl\n---\n"
        "kind: Endpoint\nname: web\ndeployments:\n"
        "  small: {model: clf, compute: serve, resources: {memory: 300Mi}}\n"
        "  big: {model: clf, compute: serve}\ntraffic: {small: 50, big: 50}\n")
    (tmp_path / "model.pkl").write_bytes(b"")
    graph = load_graph([tmp_path])
    ctx: Any = SimpleNamespace(target=graph.spec.target, graph=graph)
    node = graph.nodes["endpoint/web"]
    small, big = _limits(ctx, node, "small"), _limits(ctx, node, "big")
    assert (small.memory, small.cpus) == (300 * 2**20, None)  # only what the deployment writes out
    assert (big.memory, big.cpus) == (2**30, 2)

"""Jobs of several nodes in the Docker program, under Pulumi's mocks: a container per node of the job's size,
started together, node 0 behind a network alias with the others' lifeline, torchrun on each node for
`distribution: pytorch`; node 0 alone registers, and the failure of any node fails the update with its lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from mlspec.pulumi.job import JobFailed, _versions
from mlspec.runtime.multinode import LIFELINE_PORT, RENDEZVOUS_PORT
from mlspec.runtime.train import RESULT_PREFIX
from tests.pulumi.conftest import CONTAINER, RegistryMocks
from tests.pulumi.harness import Captured, CapturedResource, container_file, run_program
from tests.pulumi.nodes_spec import compile_nodes


class NodeMocks(RegistryMocks):
    """Registry mocks whose container of node `failing` (of a job of several nodes) exits 3 with its own lines."""

    def __init__(self, failing: int | None = None) -> None:
        super().__init__()
        self.failing = failing

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        id_, state = super().new_resource(args)
        labels = {item["label"]: item["value"] for item in args.inputs.get("labels", [])}
        if args.typ == CONTAINER and labels.get("mlspec.node") == str(self.failing):
            state["exitCode"] = 3
            state["containerLogs"] = f"node {self.failing} ran out of shards\nTraceback: shard {self.failing}"
        return id_, state


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Captured:
    return run_program(compile_nodes(tmp_path_factory.mktemp("nodes")), {}, mocks=NodeMocks())


def _nodes(captured: Captured, job: str) -> list[CapturedResource]:
    found = [r for r in captured.resources if r.type == CONTAINER and r.name.startswith(f"{job}-")
             and r.name.removeprefix(f"{job}-").isdigit()]
    return sorted(found, key=lambda r: int(r.name.rsplit("-", 1)[1]))


def test_a_container_per_node_named_by_hash_and_node_of_the_jobs_size_started_together(captured: Captured) -> None:
    nodes = _nodes(captured, "train-ddp")
    assert [n.name for n in nodes] == ["train-ddp-0", "train-ddp-1"]
    content_hash = container_file(nodes[0].inputs)["content_hash"]
    assert [n.inputs["name"] for n in nodes] == [f"nodes-job-train-ddp-{content_hash[:12]}-{i}" for i in (0, 1)]
    assert len({n.inputs["image"] for n in nodes}) == 1
    for node in nodes:
        assert node.inputs["memory"] == 2048 and node.inputs["restart"] == "no" and node.inputs["attach"] is True
        # No node waits for another: Pulumi (and a real engine) starts them at once.
        assert not {other.urn for other in nodes} & set(node.dependencies)
    assert len(_nodes(captured, "shards")) == 3


def test_node_zero_answers_to_its_alias_and_every_node_runs_a_torchrun_agent(captured: Captured) -> None:
    nodes = _nodes(captured, "train-ddp")
    alias = nodes[0].inputs["name"]
    assert [n.inputs["networksAdvanced"][0].get("aliases") or [] for n in nodes] == [[alias], []]
    for rank, node in enumerate(nodes):
        run = container_file(node.inputs)
        assert run["command"].startswith(
            f"torchrun --nnodes 2 --node-rank {rank} --nproc-per-node 1 --rdzv-backend static --master-addr {alias} "
            f"--master-port {RENDEZVOUS_PORT} --max-restarts 0 --no-python bash -c 'python train.py")
        assert run["peers"] == {"node": rank, "nodes": 2, "leader": alias, "port": LIFELINE_PORT,
                                "listen": "0.0.0.0", "connect_s": 300.0, "wait_s": 600.0}
        assert run["tags"]["mlspec.node"] == str(rank)
    runs = [container_file(n.inputs) for n in nodes]
    assert runs[0]["outputs"]["model"]["register_as"] == "ddp-mlp"
    assert runs[1]["outputs"]["model"]["register_as"] is None


def test_nodes_without_a_distribution_run_the_command_with_their_rank(captured: Captured) -> None:
    runs = [container_file(n.inputs) for n in _nodes(captured, "shards")]
    assert [run["command"] for run in runs] == ["python shard.py --out ${{outputs.part}}"] * 3
    assert [(run["env"]["NODE_RANK"], run["env"]["NODE_COUNT"]) for run in runs] == [("0", "3"), ("1", "3"),
                                                                                        ("2", "3")]
    assert [run["peers"]["node"] for run in runs] == [0, 1, 2]


def test_the_job_exports_the_versions_node_zero_registered(captured: Captured) -> None:
    assert captured.exports["train-ddp.models"] == {"ddp-mlp": 1}
    assert captured.exports["shards.models"] == {}


def test_a_failing_node_fails_the_update_with_its_own_last_lines(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"(?s)training job 'train-ddp', node 1, exited with code 3; last lines of "
                                        r"its log:\n    node 1 ran out of shards\n    Traceback: shard 1"):
        run_program(compile_nodes(tmp_path), {}, mocks=NodeMocks(failing=1))


def test_any_node_that_exits_non_zero_fails_the_job_and_node_zero_gives_the_versions() -> None:
    result = RESULT_PREFIX + json.dumps({"job": "t", "status": "succeeded", "exit_code": 0,
                                         "models": [{"name": "m", "version": 4, "sha256": "ab"}]})
    assert _versions("training job 't'", [(0, result), (0, RESULT_PREFIX + '{"models": []}')]) == {"m": 4}
    with pytest.raises(JobFailed) as failed:
        _versions("training job 't'", [(1, "stopped: node 2 failed with exit code 9"), (0, "fine"), (9, "oom")])
    message = str(failed.value)
    assert "node 0, exited with code 1" in message and "node 2, exited with code 9" in message
    assert "node 1," not in message and "fine" not in message  # a node that succeeded is not blamed
    with pytest.raises(JobFailed, match=r"^training job 't' exited with code 2;"):
        _versions("training job 't'", [(2, "boom")])

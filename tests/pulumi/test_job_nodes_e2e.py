"""The run contracts of a compiled Docker job of several nodes, run as its containers would (here: a runner
process per node on this machine): torchrun agents rendezvous on node 0 and node 0 alone registers the model in a
real MLflow store; a node that fails makes the others stop within seconds instead of waiting for it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mlspec.runtime.multinode import LIFELINE_PORT, RENDEZVOUS_PORT
from tests.pulumi.harness import container_file, run_program
from tests.pulumi.nodes_spec import compile_nodes
from tests.pulumi.test_job_nodes import NodeMocks

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def contracts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Each job's node contracts, as the compiled program hands them to its containers."""
    project = compile_nodes(tmp_path_factory.mktemp("nodes"))
    captured = run_program(project, {}, mocks=NodeMocks())
    found: dict[str, list[dict[str, Any]]] = {}
    for resource in captured.resources:
        run = container_file(resource.inputs) if resource.inputs.get("attach") else {}
        if "job" in run:
            found.setdefault(run["job"], []).append(run)
    for runs in found.values():
        runs.sort(key=lambda run: run["peers"]["node"])
    found["source"] = [{"code": str(project.parent.parent / "examples" / "nodes" / "src")}]
    return found


def _start(runs: list[dict[str, Any]], code: str, tmp_path: Path) -> list[subprocess.Popen[str]]:
    """A runner per node. What differs from a container: local paths, and node 0's alias is this machine. Each
    node keeps its own sqlite store (a container talks to the MLflow server over HTTP)."""
    alias = runs[0]["peers"]["leader"]
    rendezvous, lifeline = _free_port(), _free_port()
    processes = []
    for node, contract in enumerate(runs):
        assert contract["peers"]["port"] == LIFELINE_PORT
        work = tmp_path / f"node-{node}"
        work.mkdir()
        contract = {
            **contract, "tracking_uri": f"sqlite:///{work / 'mlflow.db'}", "artifact_location": str(work / "art"),
            "code": code, "workdir": str(work / "run"), "path_prefix": str(Path(sys.executable).parent),
            "command": contract["command"].replace(f"--master-addr {alias}", "--master-addr 127.0.0.1")
            .replace(str(RENDEZVOUS_PORT), str(rendezvous)),
            "outputs": {k: {**v, "path": str(work / "run" / "outputs" / k)} for k, v in contract["outputs"].items()},
            "peers": {**contract["peers"], "leader": "127.0.0.1", "listen": "127.0.0.1", "port": lifeline}}
        (work / "node.json").write_text(json.dumps(contract))
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "mlspec.runtime.train", str(work / "node.json"), "--result",
             str(work / "result.json")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)}))
    return processes


def _result(tmp_path: Path, node: int) -> dict[str, Any]:
    return json.loads((tmp_path / f"node-{node}" / "result.json").read_text())  # type: ignore[no-any-return]


def test_torchrun_nodes_rendezvous_and_node_zero_alone_registers(contracts: dict[str, list[dict[str, Any]]],
                                                                  tmp_path: Path) -> None:
    pytest.importorskip("torch")
    processes = _start(contracts["train-ddp"], contracts["source"][0]["code"], tmp_path)
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    for node, (process, output) in enumerate(zip(processes, outputs, strict=True)):
        assert process.returncode == 0 and _result(tmp_path, node)["status"] == "succeeded", output[-3000:]
    assert [(m["name"], m["version"]) for m in _result(tmp_path, 0)["models"]] == [("ddp-mlp", 1)]
    assert _result(tmp_path, 1)["models"] == []
    assert (tmp_path / "node-0" / "run" / "outputs" / "model" / "model.pt").exists()


def test_a_torchrun_node_that_fails_stops_node_zero_instead_of_leaving_it_waiting(
        contracts: dict[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    pytest.importorskip("torch")
    runs = [dict(run) for run in contracts["train-ddp"]]
    # Node 1's script dies before it joins the process group: node 0's worker would wait for it for half an hour.
    runs[1]["command"] = runs[1]["command"].replace("'python train.py", "'exit 5; python train.py")
    processes = _start(runs, contracts["source"][0]["code"], tmp_path)
    outputs = [processes[1].communicate(timeout=300)[0]]
    ended = time.monotonic()
    outputs.insert(0, processes[0].communicate(timeout=120)[0])
    assert processes[1].returncode != 0 and processes[0].returncode != 0, outputs
    assert time.monotonic() - ended < 30, outputs[0][-3000:]
    assert "node 1 failed with exit code" in _result(tmp_path, 0)["error"]
    assert _result(tmp_path, 0)["models"] == []


def test_a_failing_node_stops_the_others_and_registers_nothing(contracts: dict[str, list[dict[str, Any]]],
                                                              tmp_path: Path) -> None:
    runs = [{**run, "env": {**run["env"], "SHARD_FAIL_RANK": "1", "SHARD_SECONDS": "600"}}
            for run in contracts["shards"]]
    processes = _start(runs, contracts["source"][0]["code"], tmp_path)
    started = time.monotonic()
    outputs = [process.communicate(timeout=180)[0] for process in processes]
    assert time.monotonic() - started < 120, outputs  # nodes 0 and 2 were to sleep 600 s
    assert [process.returncode for process in processes] == [1, 1, 1], outputs
    assert _result(tmp_path, 1)["exit_code"] == 3
    assert _result(tmp_path, 0)["error"] == "job 'shards' was stopped: node 1 failed with exit code 3"
    assert "node 0 stopped before this node finished" in _result(tmp_path, 2)["error"]
    assert "mlspec: job 'shards' was stopped: node 1 failed with exit code 3" in outputs[0]

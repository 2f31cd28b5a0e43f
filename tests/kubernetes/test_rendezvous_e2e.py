"""The run contracts of a compiled distributed Job, run as its two pods would (here: two local processes): their
torchrun agents rendezvous on node 0, train together, and node 0 alone registers the model."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kubernetes.conftest import SPECS, compiled

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_node_contracts_rendezvous_and_node_zero_registers(tmp_path: Path) -> None:
    objects = compiled("distributed", pinned=True).objects
    job = next(o for o in objects if o["kind"] == "Job" and o["metadata"]["name"].startswith("train-ddp-"))
    name = job["metadata"]["name"]
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{name}-run")
    port = _free_port()
    runs = []
    for node in range(job["spec"]["completions"]):
        contract = json.loads(config["data"][f"node-{node}.json"])
        work = tmp_path / f"node-{node}"
        # What differs from a pod: local paths, and pod 0's DNS name is this machine. Each node keeps its own
        # sqlite store (a pod talks to the MLflow server over HTTP; two processes on one sqlite file would lock).
        contract.update(
            tracking_uri=f"sqlite:///{work / 'mlflow.db'}", artifact_location=str(work / "artifacts"),
            code=str(SPECS["distributed"] / "src"), workdir=str(work / "run"),
            path_prefix=str(Path(sys.executable).parent),
            command=contract["command"].replace(f"{name}-0.{name}", "127.0.0.1").replace("29400", str(port)),
            outputs={k: {**v, "path": str(work / "run" / "outputs" / k)} for k, v in contract["outputs"].items()})
        work.mkdir()
        (work / "node.json").write_text(json.dumps(contract))
        runs.append(subprocess.Popen([sys.executable, "-m", "mlspec.runtime.train", str(work / "node.json"),
                                      "--result", str(work / "result.json")],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    results = [json.loads((tmp_path / f"node-{n}" / "result.json").read_text()) for n in range(len(runs))]
    for run, output, result in zip(runs, outputs, results, strict=True):
        assert run.returncode == 0 and result["status"] == "succeeded", output[-3000:]
    assert [m["name"] for m in results[0]["models"]] == ["ddp-mlp"]
    assert results[1]["models"] == []

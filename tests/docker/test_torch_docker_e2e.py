"""The torch-digits example on a real Docker engine: its torch environment installs the CPU build offline from the
wheelhouse (the only image sent torch's wheels), the job trains the MLP and registers it as TorchScript in the
workspace's MLflow, and the endpoint (dynamic batching) answers the digits of two images with its key. A job of two
nodes added to the spec trains data-parallel: a container per node, torchrun agents meeting at node 0's alias on the
workspace network, gloo between them, node 0 alone registering the model.

Cost: the torch environment's image (torch installed from its 190 MB wheel) on top of the runtime image that the
other Docker files have built already; about two minutes here, the two-node job some seconds of it."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from mlspec.cli.main import main
from mlspec.runtime.train import registered_versions
from tests.docker.engine import DockerEngine
from tests.docker.test_iris_docker_e2e import CONTAINER, IMAGE, PASSWORD, assert_runs_as_declared, post, report
from tests.pulumi.harness import container_file, run_program

ROOT = Path(__file__).resolve().parents[2]
REQUEST = ROOT / "examples" / "torch-digits" / "request.json"
DDP_CODE = ROOT / "tests" / "kubernetes" / "specs" / "distributed" / "src"
DDP_JOB = """
---
kind: Compute
name: pair
type: cluster
max_nodes: 2
resources: {cpus: 1, memory: 2Gi}
---
kind: Job
name: train-ddp
code: ddp/
compute: pair
command: python train.py --epochs 3 --model-dir ${{outputs.model}}
outputs:
  model: {type: model, register_as: ddp-mlp, flavor: torch}
resources: {instance_count: 2}
distribution: {type: pytorch, process_count_per_instance: 1}
timeout: 10m
"""

pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.timeout(1800)]


def test_torch_digits_stack_on_docker_trains_with_torch_and_serves_batched(
        docker_engine: DockerEngine, base_image: str, wheelhouse: Path, tmp_path: Path,
        pytestconfig: pytest.Config, record_property: Any) -> None:
    assert any(wheelhouse.glob("torch-*.whl")), f"no torch wheel in {wheelhouse}: run scripts/wheelhouse"
    client = docker_engine.client
    started = time.monotonic()
    spec = tmp_path / "examples" / "torch-digits"
    shutil.copytree(ROOT / "examples" / "torch-digits", spec, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    shutil.copytree(DDP_CODE, spec / "ddp", ignore=shutil.ignore_patterns("__pycache__"))
    (spec / "mlspec.yaml").write_text((spec / "mlspec.yaml").read_text() + DDP_JOB)
    stack = tmp_path / "stacks" / "torch-digits"
    assert main(["compile", str(spec), "--target", "docker", "-o", str(stack)]) == 0
    config = {"mlspec:baseImage": base_image, "mlspec:wheelhouse": str(wheelhouse),
              "mlspec:publishAddress": "127.0.0.1"}
    captured = run_program(stack, config, mocks=docker_engine)
    provisioned_s = time.monotonic() - started
    assert not docker_engine.errors

    # torch's wheels went to the torch environment's build alone.
    staged = {folder.name: {w.name.split("-")[0] for w in (folder / "wheels").iterdir()}
              for folder in (stack / ".build").iterdir() if (folder / "wheels").is_dir()}
    with_torch = {name for name, wheels in staged.items() if "torch" in wheels}
    assert with_torch == {"environment-torch"}, staged

    for resource in captured.of_type(CONTAINER):
        assert_runs_as_declared(client, resource)
    job = next(r for r in captured.of_type(CONTAINER) if r.name == "train")
    assert job.outputs["exitCode"] == 0, job.outputs.get("containerLogs")
    logs = job.outputs["containerLogs"]
    accuracy = float(logs.split("mlp: test accuracy ", 1)[1].split()[0])
    assert accuracy > 0.9, logs

    # Two node containers, torchrun in each, node 0 behind its alias; node 0 alone registered the model.
    nodes = [captured.get(CONTAINER, f"train-ddp-{node}") for node in (0, 1)]
    for node in nodes:
        assert node.outputs["exitCode"] == 0, node.outputs.get("containerLogs")
        assert node.inputs["command"] and "torchrun" in json.dumps(container_file(node.inputs))
    registered = [registered_versions(node.outputs["containerLogs"]) for node in nodes]
    assert registered[0] == {"ddp-mlp": 1} and registered[1] == {}, registered

    gateway = next(r for r in captured.of_type(CONTAINER)
                   if {"label": "mlspec.role", "value": "gateway"} in r.inputs["labels"])
    port = gateway.inputs["ports"][0]
    url = f"http://{port['ip']}:{int(port['external'])}/invocations"
    key = next(r.outputs["result"] for r in captured.of_type(PASSWORD) if r.name.endswith("-key"))
    status, answer = post(url, REQUEST.read_bytes(), {"Content-Type": "application/json",
                                                      "Authorization": f"Bearer {key}"})
    assert status == 200, answer
    assert json.loads(answer)["predictions"] == [0, 1]  # the first two images of scikit-learn's digits

    sizes = {i.inputs["imageName"]: int(client.images.get(i.inputs["imageName"]).attrs["Size"])
             for i in captured.of_type(IMAGE)}
    record_property("provision_seconds", round(provisioned_s, 1))
    record_property("image_sizes", sizes)
    report(pytestconfig, [f"torch-digits on Docker: provisioned in {provisioned_s:.0f} s, train accuracy "
                          f"{accuracy:.3f}", *[f"  image {n}: {s / 1e6:.0f} MB" for n, s in sorted(sizes.items())]])

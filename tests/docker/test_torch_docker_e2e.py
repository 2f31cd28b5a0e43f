"""The compiled torch-digits stack on a real Docker engine: its torch environment installs the CPU build offline from
the wheelhouse (the only image sent torch's wheels), the job trains the MLP and registers it as TorchScript in the
workspace's MLflow, and the endpoint (dynamic batching) answers the digits of two images with its key.

Cost: the torch environment's image (torch installed from its 190 MB wheel) on top of the runtime image that the
other Docker files have built already; about two minutes here."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.docker.engine import DockerEngine
from tests.docker.test_iris_docker_e2e import CONTAINER, IMAGE, PASSWORD, assert_runs_as_declared, post, report
from tests.pulumi.harness import run_program

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "stacks" / "torch-digits"
REQUEST = ROOT / "examples" / "torch-digits" / "request.json"

pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.timeout(1800)]


def test_torch_digits_stack_on_docker_trains_with_torch_and_serves_batched(
        docker_engine: DockerEngine, base_image: str, wheelhouse: Path, tmp_path: Path,
        pytestconfig: pytest.Config, record_property: Any) -> None:
    assert any(wheelhouse.glob("torch-*.whl")), f"no torch wheel in {wheelhouse}: run scripts/wheelhouse"
    client = docker_engine.client
    started = time.monotonic()
    for part in ("stacks/torch-digits", "examples/torch-digits"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns(".build", ".mlspec", "__pycache__"))
    stack = tmp_path / "stacks" / "torch-digits"
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

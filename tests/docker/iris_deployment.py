"""One deployment of the iris example on the real engine, shared by the Docker files that need a live iris stack
(the end-to-end checks, the operation commands, the rollout): provisioning it takes minutes, so it is done once.

Green's liveness probe is quick, so the operations' check that a hung replica is restarted takes seconds. A file
that changes the stack (the rollout replaces blue's replica) runs after those that read it: the Docker files run
one after another in name order (tests/conftest.py)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from mlspec.cli.main import main
from tests.docker.engine import DockerEngine
from tests.pulumi.harness import Captured, run_program

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = "iris-demo"  # examples/iris's own
GREEN_LIVENESS = {"initial_delay": 15, "period": 2, "timeout": 1, "failure_threshold": 3}


@dataclass
class IrisDeployment:
    """The deployed stack: its spec folder, its compiled program, what the program declared and the engine made."""

    spec: Path
    project: Path
    captured: Captured
    engine: DockerEngine
    provisioned_s: float


def deploy_iris(engine: DockerEngine, root: Path, base_image: str, wheelhouse: Path) -> IrisDeployment:
    """Copy examples/iris under `root`, give green its quick liveness probe, compile it and provision it."""
    spec = root / "examples" / "iris"
    shutil.copytree(ROOT / "examples" / "iris", spec, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    (spec / "mlspec.stacks.yaml").unlink()  # the docker target, whatever the example's stacks say
    manifest = spec / "mlspec.yaml"
    green = "    model: iris-forest@latest\n"
    text = manifest.read_text()
    assert green in text and f"name: {WORKSPACE}" in text
    manifest.write_text(text.replace(green, f"{green}    probes:\n      liveness: {json.dumps(GREEN_LIVENESS)}\n", 1))
    project = root / "stacks" / "iris"
    assert main(["compile", str(spec), "--target", "docker", "-o", str(project)]) == 0
    started = time.monotonic()
    config = {"mlspec:baseImage": base_image, "mlspec:wheelhouse": str(wheelhouse),
              "mlspec:publishAddress": "127.0.0.1"}
    captured = run_program(project, config, mocks=engine)
    assert not engine.errors, engine.errors
    return IrisDeployment(spec, project, captured, engine, time.monotonic() - started)

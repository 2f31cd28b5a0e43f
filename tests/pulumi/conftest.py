"""Fixtures for the Docker target: compiled example projects laid out like `stacks/` beside `examples/`."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest

from mlspec.backends.pulumi import compile_project
from mlspec.graph import load_graph
from mlspec.runtime.train import RESULT_PREFIX
from tests.pulumi.harness import EchoMocks, container_file

ROOT = Path(__file__).resolve().parents[2]
CONTAINER = "docker:index/container:Container"


def compile_copy(base: Path, example: str, edit: Callable[[Path], None] | None = None) -> Path:
    """Copy examples/EXAMPLE under BASE, optionally edit it, compile it to BASE/stacks/EXAMPLE (the repo layout)."""
    spec = base / "examples" / example
    shutil.copytree(ROOT / "examples" / example, spec, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    if edit:
        edit(spec)
    return compile_in_layout(spec, base)


def compile_in_layout(spec: Path, base: Path) -> Path:
    """The spec folder SPEC compiled for docker to BASE/stacks/<its name> (the repository's layout)."""
    out = base / "stacks" / spec.name
    compile_project(load_graph([spec]), out)
    return out


@pytest.fixture
def iris_project(tmp_path: Path) -> Path:
    return compile_copy(tmp_path, "iris")


def mock_digest(model: str, content_hash: str) -> str:
    """The sha256 RegistryMocks' training containers report for the files of a version they register."""
    return hashlib.sha256(f"{model}\0{content_hash}".encode()).hexdigest()


class RegistryMocks(EchoMocks):
    """Echo mocks whose training containers succeed and register a model version, as MLflow would number it:
    a job with a new content hash gets the next version of each model it registers; the same hash, the same."""

    def __init__(self, exit_code: int = 0) -> None:
        self.versions: dict[str, list[str]] = {}
        self.exit_code = exit_code

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        id_, state = super().new_resource(args)
        run = container_file(args.inputs) if args.typ == CONTAINER and args.inputs.get("attach") \
            else {}
        if "job" in run:  # a training job (the other run-once container applies labels)
            models = []
            for output in run["outputs"].values():
                if output.get("register_as"):
                    hashes = self.versions.setdefault(output["register_as"], [])
                    if run["content_hash"] not in hashes:
                        hashes.append(run["content_hash"])
                    models.append({"name": output["register_as"], "sha256": mock_digest(output["register_as"],
                                                                                    run["content_hash"]),
                                   "version": hashes.index(run["content_hash"]) + 1})
            ok = self.exit_code == 0
            result = {"job": run["job"], "status": "succeeded" if ok else "failed", "exit_code": self.exit_code,
                      "models": models if ok else []}
            state["exitCode"] = self.exit_code
            state["containerLogs"] = "\n".join(["epoch 1 loss 0.5", "Traceback: boom" if not ok else "done",
                                                RESULT_PREFIX + json.dumps(result)])
        elif "path" in run:  # a model registered from a path: a version per content hash, as a job's
            name, content_hash = run["name"], run["tags"]["mlspec.hash"]
            hashes = self.versions.setdefault(name, [])
            if content_hash not in hashes:
                hashes.append(content_hash)
            result = {"job": f"model/{name}", "status": "succeeded", "exit_code": None,
                      "models": [{"name": name, "sha256": mock_digest(name, content_hash),
                                  "version": hashes.index(content_hash) + 1}]}
            state["exitCode"] = 0
            state["containerLogs"] = RESULT_PREFIX + json.dumps(result)
        return id_, state

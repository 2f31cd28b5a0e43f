"""examples/sweep compiled for the docker target, and mocks whose sweep containers report the best trial's model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi

from mlspec.runtime.train import RESULT_PREFIX
from tests.pulumi.conftest import CONTAINER, RegistryMocks, compile_copy, mock_digest
from tests.pulumi.harness import container_file


def compile_sweep(base: Path, edit: str | None = None, replacement: str = "") -> Path:
    """examples/sweep (with `edit` replaced in its spec) compiled to BASE/stacks/sweep."""

    def change(spec: Path) -> None:
        if edit is not None:
            path = spec / "mlspec.yaml"
            text = path.read_text()
            assert edit in text
            path.write_text(text.replace(edit, replacement))

    return compile_copy(base, "sweep", change)


class SweepMocks(RegistryMocks):
    """Registry mocks whose sweep controllers exit `exit_code`, registering a version of each model the sweep's
    trials output (per content hash, as a training job's) when they succeed."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        id_, state = super().new_resource(args)
        run = container_file(args.inputs) if args.typ == CONTAINER and args.inputs.get("attach") else {}
        if "sweep" in run:
            template, ok = run["template"], self.exit_code == 0
            models = []
            for output in template["outputs"].values():
                if output.get("register_as") and ok:
                    hashes = self.versions.setdefault(output["register_as"], [])
                    if template["content_hash"] not in hashes:
                        hashes.append(template["content_hash"])
                    models.append({"name": output["register_as"], "version": hashes.index(template["content_hash"])
                                   + 1, "sha256": mock_digest(output["register_as"], template["content_hash"])})
            result = {"job": run["sweep"]["name"], "status": "succeeded" if ok else "failed",
                      "exit_code": self.exit_code, "models": models}
            state["exitCode"] = self.exit_code
            state["containerLogs"] = "\n".join(["[tune] trial 0 started: alpha=0.01, loss=hinge",
                                                "[tune] mlspec: sweep 'tune': no trial succeeded" if not ok else
                                                "[tune] best trial 0: val_accuracy 0.9",
                                                RESULT_PREFIX + json.dumps(result)])
        return id_, state

"""examples/pipeline compiled for the docker target, and mocks whose pipeline containers report the models their
steps register."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi

from mlspec.runtime.train import RESULT_PREFIX
from tests.pulumi.conftest import CONTAINER, RegistryMocks, compile_copy, mock_digest
from tests.pulumi.harness import container_file


def compile_pipeline(base: Path, edit: str | None = None, replacement: str = "", path: str = "mlspec.yaml") -> Path:
    """examples/pipeline (with `edit` replaced in its file `path`) compiled to BASE/stacks/pipeline."""

    def change(spec: Path) -> None:
        if edit is not None:
            target = spec / path
            text = target.read_text()
            assert edit in text
            target.write_text(text.replace(edit, replacement))

    return compile_copy(base, "pipeline", change)


class PipelineMocks(RegistryMocks):
    """Registry mocks whose pipeline containers exit `exit_code`, registering a version of each model a step
    registers (per step content hash, as a training job's) when they succeed."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        id_, state = super().new_resource(args)
        run = container_file(args.inputs) if args.typ == CONTAINER and args.inputs.get("attach") else {}
        if "steps" in run:
            ok, models = self.exit_code == 0, []
            for step in run["steps"]:
                for output in step["template"]["outputs"].values():
                    if output.get("register_as") and ok:
                        hashes = self.versions.setdefault(output["register_as"], [])
                        if step["static_hash"] not in hashes:
                            hashes.append(step["static_hash"])
                        models.append({"name": output["register_as"], "sha256": mock_digest(
                            output["register_as"], step["static_hash"]),
                            "version": hashes.index(step["static_hash"]) + 1})
            result = {"job": run["name"], "status": "succeeded" if ok else "failed", "exit_code": self.exit_code,
                      "models": models}
            state["exitCode"] = self.exit_code
            state["containerLogs"] = "\n".join(["[wine] step prepare started",
                                                "[wine] step train failed: boom" if not ok else
                                                "[wine] step train succeeded", RESULT_PREFIX + json.dumps(result)])
        return id_, state

"""The Job kind: a training run whose inputs, code and environment determine its content hash."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from mlspec.spec.base import Name, Resource, Seconds, Strict

Flavor = Literal["sklearn", "torch", "pyfunc"]

# ${{inputs.x}} / ${{outputs.y}}: the Azure ML CLI v2 placeholder syntax users already write.
PLACEHOLDER = re.compile(r"\$\{\{\s*([A-Za-z_][\w]*)\.([A-Za-z_][\w]*)\s*\}\}")


class PathInput(Strict):
    """An input given as a path rather than a registered Data resource."""

    type: Literal["uri_file", "uri_folder"] = Field(description="File or folder.")
    path: str = Field(description="Path relative to the spec file.")


InputValue = bool | int | float | str | PathInput


class Output(Strict):
    """Something the job writes; a model output can be registered in the model registry."""

    type: Literal["model", "uri_folder", "uri_file"] = Field("uri_folder", description="What the job writes there.")
    register_as: Name | None = Field(None, description="Register the output as a new version of this model.")
    flavor: Flavor | None = Field(None, description="How to load the model: sklearn, torch or an MLflow pyfunc.")

    @model_validator(mode="after")
    def _only_models_register(self) -> Output:
        if self.register_as and self.type != "model":
            raise ValueError("only outputs of type 'model' can be registered (set type: model)")
        return self


class JobResources(Strict):
    instance_count: int = Field(1, ge=1, description="Nodes the job runs on. Without a distribution every node runs "
                                "the command, with NODE_RANK and NODE_COUNT set; locally a node is a process tree.")


class Distribution(Strict):
    type: Literal["pytorch"] = Field(description="Launch with torchrun: every node runs a torchrun agent, which sets "
                                     "WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for each process.")
    process_count_per_instance: int = Field(1, ge=1, description="Processes per node (usually GPUs per node).")


class Job(Resource):
    """A command job: runs `command` in `code` with inputs substituted; re-runs only when its hash changes."""

    kind: Literal["Job"] = "Job"
    type: Literal["command"] = Field("command", description="'command' (sweeps and pipelines come later).")
    command: str = Field(description="Shell command; use ${{inputs.NAME}} and ${{outputs.NAME}}.")
    code: str | None = Field(None, description="Folder snapshotted and used as the working directory.")
    environment: Name | None = Field(None, description="Environment to run in (default: the workspace default).")
    compute: Name | None = Field(None, description="Compute to run on (default: the workspace default).")
    inputs: dict[str, InputValue] = Field(
        default_factory=dict, description="Literals, 'data:NAME' references, or {type, path} inputs."
    )
    outputs: dict[str, Output] = Field(default_factory=dict, description="Folders the job writes.")
    resources: JobResources = Field(default_factory=JobResources, description="Node count.")
    distribution: Distribution | None = Field(None, description="Distributed training launcher.")
    environment_variables: dict[str, str] = Field(default_factory=dict, description="Extra variables for the command.")
    timeout: Seconds | None = Field(None, description="Stop the job after this long, e.g. '30m'.")
    retries: int = Field(0, ge=0, le=10, description="Extra attempts after a failure.")
    experiment_name: str | None = Field(None, description="MLflow experiment (default: the workspace name).")

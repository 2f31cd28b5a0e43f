"""The spec models: one strict pydantic model per kind (and per type within a kind)."""

from __future__ import annotations

from mlspec.spec.automl import AutoMLJob
from mlspec.spec.base import Resource
from mlspec.spec.compute import COMPUTE_TYPES, Compute
from mlspec.spec.data import Data
from mlspec.spec.endpoint import ENDPOINT_TYPES, BatchEndpoint, Deployment, Endpoint, OnlineEndpoint
from mlspec.spec.environment import Environment
from mlspec.spec.job import Job
from mlspec.spec.model import Model, ModelRef
from mlspec.spec.pipeline import PipelineJob
from mlspec.spec.sweep import SweepJob
from mlspec.spec.workspace import Workspace

# kind -> model class, or kind -> (type -> model class) for kinds with variants.
KINDS: dict[str, type[Resource] | dict[str, type[Resource]]] = {
    "Workspace": Workspace,
    "Compute": dict(COMPUTE_TYPES),
    "Environment": Environment,
    "Data": Data,
    "Job": {"command": Job, "sweep": SweepJob, "automl": AutoMLJob, "pipeline": PipelineJob},
    "Model": Model,
    "Endpoint": dict(ENDPOINT_TYPES),
}

# Default `type` where a kind has variants and the document gives none.
DEFAULT_TYPES: dict[str, str] = {"Compute": "local", "Endpoint": "online", "Job": "command"}

__all__ = [
    "DEFAULT_TYPES",
    "KINDS",
    "AutoMLJob",
    "BatchEndpoint",
    "Compute",
    "Data",
    "Deployment",
    "Endpoint",
    "Environment",
    "Job",
    "Model",
    "ModelRef",
    "OnlineEndpoint",
    "PipelineJob",
    "Resource",
    "SweepJob",
    "Workspace",
]

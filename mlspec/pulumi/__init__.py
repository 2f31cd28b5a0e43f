"""mlspec's Pulumi component resources for a Docker host: what a compiled `__main__.py` is written in."""

from mlspec.pulumi.batch import BatchEndpoint, BatchEndpointArgs
from mlspec.pulumi.containers import Size
from mlspec.pulumi.endpoint import DeploymentArgs, OnlineEndpoint, OnlineEndpointArgs, ScoringArgs
from mlspec.pulumi.environment import BuildArgs, Environment, EnvironmentArgs
from mlspec.pulumi.instance import ComputeInstance, ComputeInstanceArgs
from mlspec.pulumi.job import TrainingJob, TrainingJobArgs
from mlspec.pulumi.labels import MlflowLabels, MlflowLabelsArgs
from mlspec.pulumi.registered_model import PathModel, PathModelArgs
from mlspec.pulumi.settings import Settings
from mlspec.pulumi.workspace import Workspace, WorkspaceArgs

__all__ = [
    "BatchEndpoint",
    "BatchEndpointArgs",
    "BuildArgs",
    "ComputeInstance",
    "ComputeInstanceArgs",
    "DeploymentArgs",
    "Environment",
    "EnvironmentArgs",
    "MlflowLabels",
    "MlflowLabelsArgs",
    "OnlineEndpoint",
    "OnlineEndpointArgs",
    "PathModel",
    "PathModelArgs",
    "ScoringArgs",
    "Settings",
    "Size",
    "TrainingJob",
    "TrainingJobArgs",
    "Workspace",
    "WorkspaceArgs",
]

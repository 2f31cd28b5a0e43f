"""The Workspace kind: the unit everything else lives in."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlspec.spec.base import Bytes, Name, Resource, Strict


class Storage(Strict):
    """Where artifacts, data snapshots, notebooks and the tracking store live."""

    path: str = Field(".mlspec", description="Local target: a folder, relative to the spec, holding the workspace.")
    volume: str | None = Field(None, description="Docker target: the volume name (default: '<workspace>-storage').")
    size: Bytes = Field(10 * 2**30, description="Kubernetes target: the size of the PersistentVolumeClaim.")


class Tracking(Strict):
    """Experiment tracking and the model registry (MLflow)."""

    backend: Literal["mlflow"] = Field("mlflow", description="The tracking and registry service.")
    uri: str | None = Field(
        None, description="An existing MLflow tracking server to use instead of the one mlspec runs for the workspace."
    )


class Defaults(Strict):
    """What jobs and deployments use when they name no compute or environment."""

    compute: Name | None = Field(None, description="Compute used by jobs and deployments that name none.")
    environment: Name | None = Field(None, description="Environment used by jobs and deployments that name none.")


class Workspace(Resource):
    """The workspace: one per spec; one Pulumi project or one local state folder."""

    kind: Literal["Workspace"] = "Workspace"
    storage: Storage = Field(default_factory=Storage, description="Artifact and notebook storage.")
    tracking: Tracking = Field(default_factory=Tracking, description="Experiment tracking and model registry.")
    defaults: Defaults = Field(default_factory=Defaults, description="Default compute and environment.")

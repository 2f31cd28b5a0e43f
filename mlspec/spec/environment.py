"""The Environment kind: the software a job or deployment runs in."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mlspec.spec.base import Resource, Strict


class Build(Strict):
    """A Docker build context the user maintains."""

    context: str = Field(description="Folder sent to the image build, relative to the spec.")
    dockerfile: str = Field("Dockerfile", description="Dockerfile path inside the context.")


class Environment(Resource):
    """Base image and Python packages; images are tagged by content hash and built once."""

    kind: Literal["Environment"] = "Environment"
    image: str | None = Field(
        None, description="Base image (docker and kubernetes targets). Default: the stack's base image setting."
    )
    python: str = Field("3.11", pattern=r"^3\.\d+$", description="Python version, e.g. '3.11'. Locally an "
                        "environment runs on mlspec's own interpreter: unset, that one; another version is refused.")
    requirements: list[str] | str | None = Field(
        None, description="pip requirements: a list of specifiers, or the path of a requirements file."
    )
    conda_file: str | None = Field(
        None, description="Path of a conda environment file: its pip section is installed, and on images the "
                          "Python version it pins (python=3.10) too; other conda packages are refused.")
    build: Build | None = Field(None, description="Build from your own Dockerfile instead of a base image.")
    wheelhouse: str | None = Field(None, description="Folder of wheels to install from offline (no package index).")
    environment_variables: dict[str, str] = Field(default_factory=dict, description="Variables set in every process.")

    @model_validator(mode="after")
    def _one_source(self) -> Environment:
        given = [f for f in ("requirements", "conda_file", "build") if getattr(self, f) is not None]
        if len(given) > 1:
            raise ValueError(f"give only one of requirements, conda_file or build (got {', '.join(given)})")
        return self

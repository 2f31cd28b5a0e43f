"""`Environment`: an image with a virtualenv of the environment's requirements and mlspec's runtime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pulumi
import pulumi_docker as docker

from mlspec.pulumi.context import build_context_digest, context_digest, image_tag, stage_environment

if TYPE_CHECKING:
    from mlspec.pulumi.workspace import Workspace


@dataclass(frozen=True)
class BuildArgs:
    """The user's own Docker build context.

    :param context: the folder sent to the build, relative to the spec root.
    :param dockerfile: the Dockerfile, relative to the context.
    """

    context: str
    dockerfile: str = "Dockerfile"


@dataclass(frozen=True)
class EnvironmentArgs:
    """How to build one environment image.

    :param content_hash: the environment's content hash; the image tag is made of it and of what else the build
        reads (base image, mlspec's runtime, offline wheels), so an unchanged environment is never rebuilt and a
        changed one always is (never ``latest``).
    :param dockerfile: the generated Dockerfile, relative to the project folder.
    :param requirements: the generated requirements.txt (mlspec's runtime first, then the spec's).
    :param base_image: the image to start from; None: the stack's ``mlspec:baseImage`` (for ``python``, that
        setting's image of that Python version: see `Settings.base_image_for`).
    :param env: variables set in every container that runs in this environment.
    :param on_runtime: build on the workspace's runtime image, installing only what it lacks, so environments
        share its layers (an environment without a base image of its own); False: a whole image from the base.
    :param python: the Python version the spec asks for ('3.10'); the generated Dockerfile stops the build when
        the base image's ``python3`` is another one. None: the base image's, whichever it is.
    :param build: the user's Docker build context: its image (tagged by the content hash of the files the build
        reads, so an unchanged context is never rebuilt) is the base image, and mlspec's runtime goes on top.
    """

    content_hash: str
    dockerfile: str
    requirements: str
    base_image: str | None = None
    env: dict[str, str] | None = None
    on_runtime: bool = False
    python: str | None = None
    build: BuildArgs | None = None


class Environment(pulumi.ComponentResource):
    """One image per environment content hash and build inputs, tagged with both; built from a staged context
    with no network use beyond the package index (or none at all with ``mlspec:wheelhouse``).

    With ``build``, two images: the user's, built from their context as their Dockerfile says, and on it a
    virtualenv at /opt/mlspec that sees the image's own Python packages (``--system-site-packages``) and adds
    what mlspec's runtime lacks, mlspec's runtime itself and the ``mlspec`` user; jobs and replicas run on that
    one. So the user's image needs a Debian-like system with ``python3`` (its ``venv`` module included) and
    ``useradd``; packages installed with its system ``pip`` are importable by jobs and models.
    """

    image_name: pulumi.Output[str]
    tag: str  # known while the program runs, so images built on this one derive their tags from it

    def __init__(self, name: str, workspace: Workspace, args: EnvironmentArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlspec:docker:Environment", name, None, workspace.options(opts))
        settings = workspace.settings
        self.args = args
        context = stage_environment(f"environment-{name}", Path(args.requirements), settings.wheelhouse,
                                    with_runtime=not args.on_runtime)
        offline = "1" if settings.wheelhouse else ""
        build_args: dict[str, pulumi.Input[str]]
        if args.on_runtime:
            runtime = workspace.runtime
            build_args = {"RUNTIME_IMAGE": runtime.image_name, "PIP_OFFLINE": offline}
            self.tag = image_tag(args.content_hash, runtime.tag, offline, context_digest(context))
        elif args.build is not None:
            source = Path(workspace.args.spec_root) / args.build.context
            digest = build_context_digest(source, args.build.dockerfile)
            self.source = docker.Image(
                f"{name}-source",
                image_name=f"{workspace.name}-{name}-source:{digest}",
                build=docker.DockerBuildArgs(context=source.as_posix(),
                                             dockerfile=(source / args.build.dockerfile).as_posix()),
                skip_push=True,
                opts=pulumi.ResourceOptions(parent=self),
            )
            build_args = {"BASE_IMAGE": self.source.image_name, "PIP_OFFLINE": offline}
            # The context's files, not the environment's content hash: a file the build ignores rebuilds nothing.
            self.tag = image_tag(digest, offline, context_digest(context))
        else:
            base = args.base_image or settings.base_image_for(args.python)
            build_args = {"BASE_IMAGE": base, "PIP_OFFLINE": offline}
            self.tag = image_tag(args.content_hash, base, offline, context_digest(context))
        self.image = docker.Image(
            name,
            image_name=f"{workspace.name}-{name}:{self.tag}",
            build=docker.DockerBuildArgs(context=context.as_posix(), dockerfile=args.dockerfile, args=build_args),
            skip_push=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.image_name = self.image.image_name
        self.env = dict(args.env or {})
        self.register_outputs({"image_name": self.image_name})

"""`Environment`: an image with a virtualenv of the environment's requirements and mlspec's runtime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pulumi
import pulumi_docker as docker

from mlspec.pulumi.context import build_context_digest, context_digest, image_tag, stage_environment

if TYPE_CHECKING:
    from mlspec.pulumi.hosts import AttachedHost
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

    tag: str  # known while the program runs, so images built on this one derive their tags from it

    def __init__(self, name: str, workspace: Workspace, args: EnvironmentArgs,
                 opts: pulumi.ResourceOptions | None = None, host: AttachedHost | None = None,
                 attached_only: bool = False) -> None:
        """:param host: the attached host this copy of the image is built on; None: the stack's host.
        :param attached_only: everything that runs on it is on attached hosts: the stack's host builds it only if
            something there asks for it. False: built on the stack's host whether or not anything uses it (a
            declared environment is delivered)."""
        # On an attached host (see AttachedHost.environment) the same image is built there, under its own name.
        own = name if host is None else f"{name}-on-{host.slug}"
        super().__init__("mlspec:docker:Environment", own, None, workspace.options(opts, host))
        settings = workspace.settings
        self.name, self.args, self._own, self._workspace = name, args, own, workspace
        self._context = stage_environment(f"environment-{own}", Path(args.requirements), settings.wheelhouse,
                                          with_runtime=not args.on_runtime)
        self._offline = "1" if settings.wheelhouse else ""
        self._runtime = (workspace.runtime if host is None else host.runtime) if args.on_runtime else None
        self._source = Path(workspace.args.spec_root) / args.build.context if args.build is not None else None
        self._base = args.base_image or settings.base_image_for(args.python)
        if self._runtime is not None:
            self.tag = image_tag(args.content_hash, self._runtime.tag, self._offline, context_digest(self._context))
        elif args.build is not None and self._source is not None:
            self._source_digest = build_context_digest(self._source, args.build.dockerfile)
            # The context's files, not the environment's content hash: a file the build ignores rebuilds nothing.
            self.tag = image_tag(self._source_digest, self._offline, context_digest(self._context))
        else:
            self.tag = image_tag(args.content_hash, self._base, self._offline, context_digest(self._context))
        self._image_name = f"{workspace.name}-{name}:{self.tag}"
        self._image: docker.Image | None = None
        self.env = dict(args.env or {})
        if host is None and not attached_only:
            _ = self.image
        self.register_outputs({"tag": self.tag})

    @property
    def image(self) -> docker.Image:
        """The image, built when something first runs on it or builds on it: an environment that only attached
        hosts use is not built on the stack's host (nor the runtime image that only it would build on)."""
        if self._image is None:
            build_args: dict[str, pulumi.Input[str]] = {"PIP_OFFLINE": self._offline}
            if self._runtime is not None:
                build_args["RUNTIME_IMAGE"] = self._runtime.image_name
            elif self.args.build is not None and self._source is not None:
                source = docker.Image(
                    f"{self._own}-source",
                    image_name=f"{self._workspace.name}-{self.name}-source:{self._source_digest}",
                    build=docker.DockerBuildArgs(context=self._source.as_posix(),
                                                 dockerfile=(self._source / self.args.build.dockerfile).as_posix()),
                    skip_push=True,
                    opts=pulumi.ResourceOptions(parent=self),
                )
                build_args["BASE_IMAGE"] = source.image_name
            else:
                build_args["BASE_IMAGE"] = self._base
            self._image = docker.Image(
                self._own,
                image_name=self._image_name,
                build=docker.DockerBuildArgs(context=self._context.as_posix(), dockerfile=self.args.dockerfile,
                                             args=build_args),
                skip_push=True,
                opts=pulumi.ResourceOptions(parent=self),
            )
        return self._image

    @property
    def image_name(self) -> pulumi.Output[str]:
        return self.image.image_name

"""`RegistryImage`: one image of the workspace, built from a compiled Dockerfile and pushed to the stack's registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pulumi
import pulumi_docker as docker

from mlspec.pulumi.context import context_digest, image_tag, stage_environment, stage_job
from mlspec.pulumi.kubernetes.settings import ClusterSettings

# The build argument each kind of image takes its base from (the compiled Dockerfiles' ARG lines).
BASE_ARGUMENT = {"runtime": "BASE_IMAGE", "environment": "RUNTIME_IMAGE", "job": "ENVIRONMENT_IMAGE"}


@dataclass(frozen=True)
class ImageArgs:
    """How to build one image.

    :param key: how the compiled objects name it: their ``mlspec-image:KEY`` placeholders become this image's
        digest reference. ``runtime``, or an environment's or a job's variable name.
    :param kind: ``runtime`` (mlspec's runtime on the stack's base image), ``environment`` (built on the runtime
        image, or on ``base_image`` when the environment names one) or ``job`` (an environment's image with the
        job's code and data baked in).
    :param content_hash: the resource's content hash; with what else the build reads it makes the tag, so an
        unchanged image is never rebuilt and a changed one always is.
    :param dockerfile: the compiled Dockerfile, relative to the project folder.
    :param requirements: runtime and environment images: their compiled requirements.txt.
    :param files: job images: every file baked in, relative to the spec root, with its sha256 at compile time
        (a file changed since fails the run: recompile).
    :param base: the key of the image this one is built on (an environment's is ``runtime``, a job's its
        environment's); None: a base image.
    :param base_image: an environment's own base image; None: the stack's ``mlspec:baseImage``.
    """

    key: str
    kind: Literal["runtime", "environment", "job"]
    content_hash: str
    dockerfile: str
    requirements: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    base: str | None = None
    base_image: str | None = None


class RegistryImage(pulumi.ComponentResource):
    """Builds and pushes one image; `reference` is its digest (``REGISTRY/NAME@sha256:...``), which is what pods
    run, so a pod never starts a different image under a tag that moved."""

    reference: pulumi.Output[str]
    image_name: pulumi.Output[str]  # the pushed tag, what images built on this one start FROM
    tag: str

    def __init__(self, workspace: str, spec_root: str, args: ImageArgs, settings: ClusterSettings,
                 built: dict[str, RegistryImage], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlspec:kubernetes:Image", args.key, None, opts)
        parent = built.get(args.base) if args.base else None
        if args.base and parent is None:
            raise ValueError(f"image '{args.key}' is built on '{args.base}', which is not built before it")
        offline = "1" if settings.wheelhouse else ""
        if args.kind == "job":
            context = stage_job(f"image-{args.key}", spec_root, args.files)
        else:
            if not args.requirements:
                raise ValueError(f"image '{args.key}' ({args.kind}) needs its requirements file")
            context = stage_environment(f"image-{args.key}", Path(args.requirements), settings.wheelhouse,
                                        with_runtime=parent is None)
        base: pulumi.Input[str] = parent.image_name if parent else (args.base_image or settings.base_image)
        build_inputs = [parent.tag if parent else str(base), offline, context_digest(context)]
        self.tag = image_tag(args.content_hash, *build_inputs)
        build_args: dict[str, pulumi.Input[str]] = {BASE_ARGUMENT[args.kind] if parent else "BASE_IMAGE": base}
        if args.kind != "job":
            build_args["PIP_OFFLINE"] = offline
        self.image = docker.Image(
            args.key,
            image_name=f"{settings.registry}/{workspace}-{args.key.replace('_', '-')}:{self.tag}",
            build=docker.DockerBuildArgs(context=context.as_posix(), dockerfile=args.dockerfile, args=build_args),
            registry=_registry(settings),
            skip_push=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.image_name = self.image.image_name
        self.reference = self.image.repo_digest
        self.register_outputs({"reference": self.reference})


def _registry(settings: ClusterSettings) -> docker.RegistryArgs | None:
    if not settings.registry_username:
        return None  # the Docker client's own login
    return docker.RegistryArgs(server=settings.registry.split("/", 1)[0], username=settings.registry_username,
                               password=settings.registry_password)

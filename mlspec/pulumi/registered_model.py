"""`PathModel`: a model registered from the spec's files by a run-to-completion container whose image holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_docker as docker

from mlspec.pulumi import containers as c
from mlspec.pulumi.context import image_tag, stage_job
from mlspec.pulumi.environment import Environment
from mlspec.pulumi.job import FILES, RegistersModels
from mlspec.pulumi.workspace import Workspace
from mlspec.runtime import envfiles
from mlspec.runtime.register import Registration

REGISTRATION = f"{envfiles.DIRECTORY}/registration.json"
SIZE = c.Size(cpus=1.0, memory_mb=2048)  # loads the model once to check it
EXPERIMENT = "mlspec-models"  # where the runs that register models from a path are logged, as locally


@dataclass(frozen=True)
class PathModelArgs:
    """A Model with `path`.

    :param environment: the Environment whose image registers it: it must load the files (scikit-learn for a
        pickled estimator, torch for TorchScript or a state dict); its image plus the files is the container's.
    :param content_hash: the model's content hash (spec and files): with the environment image's tag it tags the
        image and names the container, so unchanged files are not registered again and changed ones always are.
    :param dockerfile: the generated Dockerfile, relative to the project folder.
    :param path: the model file or folder, relative to the spec root.
    :param files: every file baked into the image, relative to the spec root, with the sha256 it was compiled
        with; a file changed since then stops the update (compile again).
    :param flavor: sklearn, torch or pyfunc; None: detected from the files.
    :param loader: for a torch state dict, 'module:function' returning the network.
    :param code: the folder (relative to the spec root) the loader's module is imported from.
    :param signature: the declared signature (``{"inputs": [...], "outputs": [...]}``), or None.
    :param aliases: aliases moved to the version it registers.
    """

    environment: Environment
    content_hash: str
    dockerfile: str
    path: str
    files: dict[str, str] = field(default_factory=dict)
    flavor: str | None = None
    loader: str | None = None
    code: str | None = None
    signature: dict[str, Any] | None = None
    aliases: list[str] = field(default_factory=list)


class PathModel(RegistersModels):
    """Builds an image of the files on the environment's, and runs mlspec's registration in it once against the
    workspace's MLflow server (`python -m mlspec.runtime.register`), failing the update when it fails. Identical
    files reuse the version that holds them. `version` and `digest` are what deployments serving the model use,
    as a TrainingJob's are."""

    container: docker.Container

    def __init__(self, name: str, workspace: Workspace, args: PathModelArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlspec:docker:PathModel", name, None, workspace.options(opts))
        child = pulumi.ResourceOptions(parent=self)
        context = stage_job(f"model-{name}", workspace.args.spec_root, args.files)
        self.image = docker.Image(
            name,
            image_name=f"{workspace.name}-model-{name}:{image_tag(args.content_hash, args.environment.tag)}",
            build=docker.DockerBuildArgs(context=context.as_posix(), dockerfile=args.dockerfile,
                                         args={"ENVIRONMENT_IMAGE": args.environment.image_name}),
            skip_push=True,
            opts=child,
        )
        self.container = docker.Container(
            name,
            name=f"{workspace.name}-model-{name}-{args.content_hash[:12]}",
            image=self.image.image_name,
            command=c.with_files(c.PYTHON, "-m", "mlspec.runtime.register", REGISTRATION),
            user=c.USER,
            envs=[*c.envs(args.environment.env),
                  c.files_variable({REGISTRATION: registration(name, workspace, args).model_dump_json(
                      indent=2, exclude_none=True) + "\n"})],
            networks_advanced=c.network(workspace.network_name),
            must_run=False,
            attach=True,
            logs=True,
            restart="no",
            labels=c.labels(workspace.name, f"model/{name}", {"mlspec.hash": args.content_hash}),
            **c.hardened(SIZE),
            opts=pulumi.ResourceOptions(parent=self, depends_on=workspace.tracking),
        )
        self._read_registrations(f"registering model '{name}'", self.container)


def registration(name: str, workspace: Workspace, args: PathModelArgs) -> Registration:
    """The registration's contract, with every path as it is inside the container."""
    return Registration.model_validate({
        "name": name, "path": f"{FILES}/{args.path}".rstrip("/"), "tracking_uri": workspace.tracking_uri,
        "flavor": args.flavor, "loader": args.loader,
        "code": f"{FILES}/{args.code}".rstrip("/").removesuffix("/.") if args.code is not None else None,
        "aliases": list(args.aliases), "signature": args.signature,
        "tags": {"mlspec.hash": args.content_hash, "mlspec.workspace": workspace.name},
        "experiment": EXPERIMENT, "artifact_location": f"mlflow-artifacts:/{EXPERIMENT}"})

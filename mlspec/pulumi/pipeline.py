"""A pipeline on a Docker host: the training job's run-once container runs the local engine's pipeline runner, its
steps processes in it, their results (and the step reuse cache) on a volume."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi
import pulumi_docker as docker

from mlspec.pulumi import containers as c
from mlspec.pulumi.sweep import SweepLaunch
from mlspec.runtime import envfiles
from mlspec.runtime.pipeline.contract import CONTAINER_FOLDER, PipelineRun

if TYPE_CHECKING:
    from mlspec.pulumi.job import TrainingJobArgs
    from mlspec.pulumi.workspace import Workspace

PIPELINERUN = f"{envfiles.DIRECTORY}/pipelinerun.json"


def pipeline_run(args: TrainingJobArgs, tracking_uri: str) -> PipelineRun:
    """The runner's contract, reporting to the workspace's tracking server."""
    assert args.pipeline is not None
    return PipelineRun.model_validate_json(args.pipeline).tracked_by(tracking_uri)


def pipeline_launch(name: str, workspace: Workspace, args: TrainingJobArgs, on_attached: bool,
                    parent: pulumi.Resource) -> SweepLaunch:
    """The runner's command, contract and volume. Step results live on the workspace volume (mounted at
    `containers.STORAGE`, which holds `CONTAINER_FOLDER`); on an attached host, which cannot mount the stack host's
    volume, on a volume of the pipeline's own there, mounted where the workspace volume would be. The container
    has the compute's size once per step it runs at once, as a cluster's nodes would give them."""
    assert CONTAINER_FOLDER.startswith(f"{c.STORAGE}/")
    run = pipeline_run(args, workspace.tracking_uri)
    volume: pulumi.Input[str] = workspace.volume.name
    if on_attached:
        volume = docker.Volume(f"{name}-pipelines", name=f"{workspace.name}-pipeline-{name}",
                               opts=pulumi.ResourceOptions(parent=parent)).name
    steps = sum(run.capacity.values())
    size = args.size
    return SweepLaunch(
        command=c.with_files(c.PYTHON, "-m", "mlspec.runtime.pipeline", PIPELINERUN),
        files={PIPELINERUN: run.model_dump_json(indent=2, exclude_none=True) + "\n"},
        volumes=c.storage(volume),
        size=c.Size(cpus=size.cpus * steps, memory_mb=size.memory_mb * steps, gpus=size.gpus * steps))

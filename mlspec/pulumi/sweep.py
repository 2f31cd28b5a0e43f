"""A sweep on a Docker host: the training job's run-once container runs the sweep's controller instead of one
command, with up to `max_concurrent_trials` trials as processes in it and its study on a volume."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi
import pulumi_docker as docker

from mlspec.pulumi import containers as c
from mlspec.runtime import envfiles
from mlspec.runtime.jobrun import JobRun
from mlspec.runtime.sweep.contract import SweepRun, sweep_of, sweep_seed

if TYPE_CHECKING:
    from mlspec.pulumi.job import TrainingJobArgs
    from mlspec.pulumi.workspace import Workspace

SWEEPRUN = f"{envfiles.DIRECTORY}/sweeprun.json"
SWEEPS = f"{c.STORAGE}/sweeps"  # on the volume: <job>/<hash[:16]>/ holds optuna.db and trial-N/ per sweep


@dataclass(frozen=True)
class SweepLaunch:
    """What the sweep's container runs, is given and may use."""

    command: list[pulumi.Input[str]]
    files: dict[str, pulumi.Input[str]]
    volumes: list[docker.ContainerVolumeArgs]
    size: c.Size


def sweep_folder(name: str, content_hash: str) -> str:
    """Where the sweep of this content hash keeps its study and trials: the same sweep, the same folder, so a
    container run again resumes its study; a changed sweep starts another."""
    return f"{SWEEPS}/{name}/{content_hash[:16]}"


def sweep_run(name: str, args: TrainingJobArgs, template: JobRun) -> SweepRun:
    """The controller's contract: the sweep's settings and the template of its trials' runs (each trial has its
    own time limit, `limits.trial_timeout`; the sweep's is `limits.timeout`)."""
    assert args.sweep is not None
    return SweepRun(sweep=sweep_of(name, args.command, args.sweep),
                    template=template.model_copy(update={"timeout": None}),
                    folder=sweep_folder(name, args.content_hash), seed=sweep_seed(args.content_hash))


def sweep_launch(name: str, workspace: Workspace, args: TrainingJobArgs, template: JobRun, on_attached: bool,
                 parent: pulumi.Resource) -> SweepLaunch:
    """The controller's command, contract and volume. The study lives on the workspace volume; on an attached
    host, which cannot mount the stack host's volume, on a volume of the sweep's own there. The container has the
    compute's size once per trial it runs at once, as a cluster's nodes would give them."""
    run = sweep_run(name, args, template)
    volume: pulumi.Input[str] = workspace.volume.name
    if on_attached:
        volume = docker.Volume(f"{name}-sweeps", name=f"{workspace.name}-sweep-{name}",
                               opts=pulumi.ResourceOptions(parent=parent)).name
    trials = run.sweep.limits.max_concurrent_trials
    size = args.size
    return SweepLaunch(
        command=c.with_files(c.PYTHON, "-m", "mlspec.runtime.sweep", SWEEPRUN),
        files={SWEEPRUN: run.model_dump_json(indent=2) + "\n"},
        volumes=c.storage(volume),
        size=c.Size(cpus=size.cpus * trials, memory_mb=size.memory_mb * trials, gpus=size.gpus * trials))

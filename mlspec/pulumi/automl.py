"""An AutoML job on a Docker host: the training job's run-once container runs the local engine's AutoML runner
(`python -m mlspec.runtime.automl`) instead of one command, its searches processes in it."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from mlspec.pulumi import containers as c
from mlspec.pulumi.sweep import SweepLaunch
from mlspec.runtime import envfiles
from mlspec.runtime.automl.contract import AutoMLRun

if TYPE_CHECKING:
    from mlspec.pulumi.job import TrainingJobArgs
    from mlspec.pulumi.workspace import Workspace

AUTOMLRUN = f"{envfiles.DIRECTORY}/automlrun.json"


def automl_run(name: str, workspace: Workspace, args: TrainingJobArgs, files: str, run_dir: str) -> AutoMLRun:
    """The runner's contract with every path as it is inside the container: the table among the job's files
    (`files`, at its path in the spec), the searches' folders and the model output under `run_dir`. Each search
    may use a node's cores (`args.size` is one node's)."""
    assert args.automl is not None
    settings = json.loads(args.automl)
    data = settings.pop("data")
    return AutoMLRun.model_validate({
        **settings, "job": name, "experiment": args.experiment, "tracking_uri": workspace.tracking_uri,
        "artifact_location": "mlflow-artifacts:/" + args.experiment, "workdir": run_dir,
        "content_hash": args.content_hash, "tags": {"mlspec.workspace": workspace.name},
        "env": {**args.environment.env, **args.env}, "data": f"{files}/{data}",
        "cpus": max(1, math.ceil(args.size.cpus)),
        "outputs": {k: {**v, "path": f"{run_dir}/outputs/{k}"} for k, v in args.outputs.items()}})


def automl_launch(name: str, workspace: Workspace, args: TrainingJobArgs, files: str, run_dir: str) -> SweepLaunch:
    """The runner's command and contract. The container has the compute's size once per search it runs at once,
    as that many of a cluster's nodes would give them; nothing persists (a run again starts the search afresh)."""
    run = automl_run(name, workspace, args, files, run_dir)
    size, searches = args.size, run.concurrency
    return SweepLaunch(
        command=c.with_files(c.PYTHON, "-m", "mlspec.runtime.automl", AUTOMLRUN, "--result",
                             f"{run_dir}/result.json"),
        files={AUTOMLRUN: run.model_dump_json(indent=2) + "\n"}, volumes=[],
        size=c.Size(cpus=size.cpus * searches, memory_mb=size.memory_mb * searches, gpus=size.gpus * searches))

"""An AutoML job as a `batch/v1` Job named by its content hash: one pod runs the local engine's AutoML runner
(`python -m mlspec.runtime.automl`), its searches processes in it, the table baked into its image.

The Job is named as a command job's is (an unchanged AutoML job is the same Job and is not run again). A pod that is
evicted, preempted or killed is replaced by the Job controller and searches afresh (the runner ends the run it
left RUNNING as KILLED); the runner's own verdicts (no search produced a model, a bad contract) fail the Job at once.
"""

from __future__ import annotations

import json
import math

from mlspec.backends.pulumi.kubernetes.context import Context
from mlspec.backends.pulumi.kubernetes.jobs import FILES, RUN_DIR
from mlspec.backends.pulumi.kubernetes.meta import Object
from mlspec.backends.pulumi.kubernetes.runners import Runner, runner_objects
from mlspec.backends.pulumi.model import ComputeModel, EnvironmentModel, JobModel
from mlspec.runtime.automl.contract import AutoMLRun

RESTARTS = 2  # pods replaced after a disruption, each searching again
GRACE_S = 300  # beyond the searches' limit: refitting the best pipeline and registering it


def automl_run(job: JobModel, env: EnvironmentModel, ctx: Context) -> AutoMLRun:
    """The runner's contract with every path inside the pod. The pod has one node's size, which its searches share:
    each may use its share of the cores."""
    assert job.automl is not None
    settings = json.loads(job.automl)
    data = settings.pop("data")
    cpus = max(1, math.floor(job.size.cpus / settings["concurrency"]))
    return AutoMLRun.model_validate({
        **settings, "job": job.name, "experiment": job.experiment, "tracking_uri": ctx.tracking_uri,
        "artifact_location": "mlflow-artifacts:/" + job.experiment, "workdir": RUN_DIR,
        "content_hash": job.content_hash, "tags": {"mlspec.workspace": ctx.workspace}, "env": dict(env.env),
        "data": f"{FILES}/{data}", "cpus": cpus,
        "outputs": {name: {**output, "path": f"{RUN_DIR}/outputs/{name}"} for name, output in job.outputs.items()}})


def automl_objects(job: JobModel, env: EnvironmentModel, compute: ComputeModel | None, ctx: Context,
                   depends_on: list[str], wave: int) -> list[Object]:
    """The ConfigMap of the runner's contract and its Job; its deadline is the searches' limit (the budget and
    FLAML's overrun), then registration."""
    runner = Runner(name="automl", module="mlspec.runtime.automl", contract_key="automlrun.json",
                    contract=automl_run(job, env, ctx).model_dump_json(indent=2) + "\n", restarts=RESTARTS,
                    deadline_s=int(job.timeout) + GRACE_S if job.timeout is not None else None,
                    args=["--result", f"{RUN_DIR}/result.json"])
    return runner_objects(runner, job, env, compute, ctx, depends_on, wave)

"""A pipeline as a `batch/v1` Job named by its content hash: one pod runs the local engine's pipeline runner
(`python -m mlspec.runtime.pipeline`), its steps processes in it, their results on a PersistentVolumeClaim.

The Job is named as a command job's is (an unchanged pipeline is the same Job and is not run again). The claim is
the pipeline's, not the Job's: a changed pipeline's Job mounts it too and reuses the steps whose hash is unchanged.
A pod that is evicted or killed is replaced, and the new pod reuses the steps that had finished; the runner's own
verdicts (a step failed, a bad contract) fail the Job at once instead of running the pipeline again.
"""

from __future__ import annotations

from mlspec.backends.pulumi.kubernetes.context import Context
from mlspec.backends.pulumi.kubernetes.meta import Object, dns_name
from mlspec.backends.pulumi.kubernetes.runners import Runner, claim, runner_objects
from mlspec.backends.pulumi.model import ComputeModel, EnvironmentModel, JobModel
from mlspec.runtime.pipeline.contract import CONTAINER_FOLDER, PipelineRun

RESTARTS = 3  # pods replaced after a disruption, each reusing the steps that finished


def claim_name(job: JobModel) -> str:
    return dns_name(job.name, "pipeline")


def pipeline_run(job: JobModel, ctx: Context) -> PipelineRun:
    """The runner's contract, reporting to the workspace's tracking server."""
    assert job.pipeline is not None
    return PipelineRun.model_validate_json(job.pipeline).tracked_by(ctx.tracking_uri)


def pipeline_objects(job: JobModel, env: EnvironmentModel, compute: ComputeModel | None, ctx: Context,
                     depends_on: list[str], wave: int, storage_bytes: int) -> list[Object]:
    """The pipeline's claim, the ConfigMap of its contract and its Job."""
    runner = Runner(name="pipeline", module="mlspec.runtime.pipeline", contract_key="pipelinerun.json",
                    contract=pipeline_run(job, ctx).model_dump_json(indent=2, exclude_none=True) + "\n",
                    restarts=RESTARTS, claim=claim_name(job), mount=CONTAINER_FOLDER, volume="steps")
    return [claim(job, ctx, claim_name(job), storage_bytes),
            *runner_objects(runner, job, env, compute, ctx, depends_on, wave)]

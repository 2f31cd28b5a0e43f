"""A pipeline as a `batch/v1` Job named by its content hash: one pod runs the local engine's pipeline runner
(`python -m mlspec.runtime.pipeline`), its steps processes in it, their results on a PersistentVolumeClaim.

The Job is named as a command job's is (an unchanged pipeline is the same Job and is not run again). The claim is
the pipeline's, not the Job's: a changed pipeline's Job mounts it too and reuses the steps whose hash is unchanged.
A pod that is evicted or killed is replaced, and the new pod reuses the steps that had finished; the runner's own
verdicts (a step failed, a bad contract) fail the Job at once instead of running the pipeline again.
"""

from __future__ import annotations

from mlspec.backends.pulumi.kubernetes.context import Context, image
from mlspec.backends.pulumi.kubernetes.jobs import (
    COMPONENT,
    DEPENDS_ANNOTATION,
    SYNC_WAVE_ANNOTATION,
    job_name,
    wait_for_tracking,
)
from mlspec.backends.pulumi.kubernetes.meta import Object, dns_name, k8s_object, labels, metadata, selector_labels
from mlspec.backends.pulumi.kubernetes.pods import SCRATCH, container, pod_spec, with_tracking_credentials
from mlspec.backends.pulumi.kubernetes.scheduling import scheduling
from mlspec.backends.pulumi.model import ComputeModel, EnvironmentModel, JobModel
from mlspec.runtime.pipeline.contract import CONTAINER_FOLDER, PipelineRun

CONTRACT_DIR = "/etc/mlspec"
CONTRACT_KEY = "pipelinerun.json"
RESTARTS = 3  # pods replaced after a disruption, each reusing the steps that finished
FAILED = [1, 2]  # the runner's exit codes for a pipeline that failed (1) or a contract it cannot read (2)


def claim_name(job: JobModel) -> str:
    return dns_name(job.name, "pipeline")


def pipeline_run(job: JobModel, ctx: Context) -> PipelineRun:
    """The runner's contract, reporting to the workspace's tracking server."""
    assert job.pipeline is not None
    return PipelineRun.model_validate_json(job.pipeline).tracked_by(ctx.tracking_uri)


def pipeline_objects(job: JobModel, env: EnvironmentModel, compute: ComputeModel | None, ctx: Context,
                     depends_on: list[str], wave: int, storage_bytes: int) -> list[Object]:
    """The pipeline's claim, the ConfigMap of its contract and its Job (after `depends_on`, in sync wave `wave` + 1,
    as a command job)."""
    name = job_name(job)
    own = labels(ctx.workspace, COMPONENT, name, content_hash=job.content_hash)
    own["mlspec.io/job"] = dns_name(job.name)
    pods = selector_labels(ctx.workspace, COMPONENT, name)
    claim_labels = {**labels(ctx.workspace, COMPONENT, claim_name(job)), "mlspec.io/job": dns_name(job.name)}
    claim = k8s_object("v1", "PersistentVolumeClaim", metadata(claim_name(job), ctx.namespace, claim_labels),
                       spec={"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": f"{storage_bytes // 2**20}Mi"}}})
    contract = pipeline_run(job, ctx).model_dump_json(indent=2, exclude_none=True) + "\n"
    config = k8s_object("v1", "ConfigMap", metadata(f"{name}-run", ctx.namespace, own), data={CONTRACT_KEY: contract})
    runner = container(
        "pipeline", image(job.var), ["python", "-m", "mlspec.runtime.pipeline", f"{CONTRACT_DIR}/{CONTRACT_KEY}"],
        job.size, env={**env.env, "HOME": SCRATCH, "MLFLOW_TRACKING_URI": ctx.tracking_uri},
        mounts=[{"name": "run", "mountPath": CONTRACT_DIR, "readOnly": True},
                {"name": "steps", "mountPath": CONTAINER_FOLDER}])
    extra: Object = {"initContainers": wait_for_tracking(job.var, ctx)} if ctx.own_tracking else {}
    template_spec = pod_spec([runner], restart_policy="Never", scheduling=scheduling(ctx, compute, job.size.gpus),
                             volumes=[{"name": "run", "configMap": {"name": f"{name}-run"}},
                                      {"name": "steps", "persistentVolumeClaim": {"claimName": claim_name(job)}}],
                             **extra)
    template_spec = with_tracking_credentials(ctx, template_spec)
    annotations = {SYNC_WAVE_ANNOTATION: str(wave + 1)}
    if depends_on:
        annotations[DEPENDS_ANNOTATION] = ",".join(f"Job/{other}" for other in depends_on)
    # One pod at a time (the claim is ReadWriteOnce, the step results have one runner); a disrupted pod is replaced
    # and reuses what finished, a failed pipeline is not run again.
    spec: Object = {"backoffLimit": RESTARTS, "parallelism": 1, "completions": 1,
                    "podFailurePolicy": {"rules": [
                        {"action": "FailJob", "onExitCodes": {"containerName": "pipeline", "operator": "In",
                                                              "values": FAILED}}]},
                    "template": {"metadata": {"labels": {**own, **pods}}, "spec": template_spec}}
    workload = k8s_object("batch/v1", "Job", metadata(name, ctx.namespace, own, annotations), spec=spec)
    return [claim, config, workload]

"""An AutoML job as a `batch/v1` Job named by its content hash: one pod runs the local engine's AutoML runner
(`python -m mlspec.runtime.automl`), its searches processes in it, the table baked into its image.

The Job is named as a command job's is (an unchanged AutoML job is the same Job and is not run again). A pod that is
evicted, preempted or killed is replaced by the Job controller and searches afresh (the runner ends the run it
left RUNNING as KILLED); the runner's own verdicts (no search produced a model, a bad contract) fail the Job at once.
"""

from __future__ import annotations

import json
import math

from mlspec.backends.pulumi.kubernetes.context import Context, image
from mlspec.backends.pulumi.kubernetes.jobs import (
    COMPONENT,
    DEPENDS_ANNOTATION,
    FILES,
    RUN_DIR,
    SYNC_WAVE_ANNOTATION,
    job_name,
    wait_for_tracking,
)
from mlspec.backends.pulumi.kubernetes.meta import Object, dns_name, k8s_object, labels, metadata, selector_labels
from mlspec.backends.pulumi.kubernetes.pods import SCRATCH, container, pod_spec, with_tracking_credentials
from mlspec.backends.pulumi.kubernetes.scheduling import scheduling
from mlspec.backends.pulumi.model import ComputeModel, EnvironmentModel, JobModel
from mlspec.runtime.automl.contract import AutoMLRun

CONTRACT_DIR = "/etc/mlspec"
CONTRACT_KEY = "automlrun.json"
RESTARTS = 2  # pods replaced after a disruption, each searching again
FAILED = [1, 2]  # the runner's exit codes for a search that failed (1) or a contract it cannot read (2)
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
    """The ConfigMap of the runner's contract and its Job (after `depends_on`, in sync wave `wave` + 1, as a command
    job)."""
    name = job_name(job)
    own = labels(ctx.workspace, COMPONENT, name, content_hash=job.content_hash)
    own["mlspec.io/job"] = dns_name(job.name)
    pods = selector_labels(ctx.workspace, COMPONENT, name)
    contract = automl_run(job, env, ctx).model_dump_json(indent=2) + "\n"
    config = k8s_object("v1", "ConfigMap", metadata(f"{name}-run", ctx.namespace, own), data={CONTRACT_KEY: contract})
    runner = container(
        "automl", image(job.var),
        ["python", "-m", "mlspec.runtime.automl", f"{CONTRACT_DIR}/{CONTRACT_KEY}", "--result",
         f"{RUN_DIR}/result.json"],
        job.size, env={**env.env, "HOME": SCRATCH, "MLFLOW_TRACKING_URI": ctx.tracking_uri},
        mounts=[{"name": "run", "mountPath": CONTRACT_DIR, "readOnly": True}])
    extra: Object = {"initContainers": wait_for_tracking(job.var, ctx)} if ctx.own_tracking else {}
    template_spec = pod_spec([runner], restart_policy="Never", scheduling=scheduling(ctx, compute, job.size.gpus),
                             volumes=[{"name": "run", "configMap": {"name": f"{name}-run"}}], **extra)
    template_spec = with_tracking_credentials(ctx, template_spec)
    annotations = {SYNC_WAVE_ANNOTATION: str(wave + 1)}
    if depends_on:
        annotations[DEPENDS_ANNOTATION] = ",".join(f"Job/{other}" for other in depends_on)
    spec: Object = {"backoffLimit": RESTARTS, "parallelism": 1, "completions": 1,
                    "podFailurePolicy": {"rules": [
                        {"action": "FailJob", "onExitCodes": {"containerName": "automl", "operator": "In",
                                                              "values": FAILED}}]}}
    if job.timeout is not None:  # the searches' limit (the budget and FLAML's overrun), then registration
        spec["activeDeadlineSeconds"] = int(job.timeout) + GRACE_S
    spec["template"] = {"metadata": {"labels": {**own, **pods}}, "spec": template_spec}
    workload = k8s_object("batch/v1", "Job", metadata(name, ctx.namespace, own, annotations), spec=spec)
    return [config, workload]

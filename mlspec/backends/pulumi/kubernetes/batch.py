"""A batch endpoint as a `batch/v1` Job per scoring run, named by the content hash of what it scores, with its
predictions and the scorer's resume journal on a PersistentVolumeClaim.

The run is the local engine's: `python -m mlspec.runtime.batch BATCHRUN --result FILE`, its BatchRun contract in a
ConfigMap, the data baked into the run's image (as a training job's inputs are), the model read from the
workspace's MLflow. A pod that is evicted or fails is replaced by the Job controller (backoffLimit), and the new pod
resumes from the journal on the claim; an unchanged endpoint is the same Job, which is not run again. The claim is
the endpoint's, not the run's: every run writes its predictions there, and deleting the endpoint keeps them only
as long as the claim (Pulumi deletes it with the endpoint; `kubectl delete -k` too).
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

from mlspec.backends.pulumi.kubernetes.context import Context, image
from mlspec.backends.pulumi.kubernetes.jobs import (
    DEPENDS_ANNOTATION,
    FILES,
    HASH_IN_NAME,
    NAME_ROOM,
    SYNC_WAVE_ANNOTATION,
    job_name,
    wait_for_tracking,
)
from mlspec.backends.pulumi.kubernetes.meta import Object, dns_name, k8s_object, labels, metadata, selector_labels
from mlspec.backends.pulumi.kubernetes.pods import SCRATCH, container, pod_spec, with_tracking_credentials
from mlspec.backends.pulumi.kubernetes.scheduling import scheduling
from mlspec.backends.pulumi.model import BatchModel, ComputeModel, EnvironmentModel, JobModel
from mlspec.runtime.batch.contract import BatchRun

COMPONENT = "batch"
CLAIM_MOUNT = "/var/lib/mlspec-batch"  # the endpoint's claim: predictions, their journal, each run's result
RESULTS = ".mlspec-results"  # on the claim, beside the predictions: one result JSON per run
CONTRACT_DIR = "/etc/mlspec"
CONTRACT_KEY = "batchrun.json"


def run_hash(batch: BatchModel, registering: JobModel | None) -> str:
    """What a run scores: the endpoint's settings, its data's files and model reference (its content hash), and
    for a model a job of the spec registers, that job's content hash (a retrained model is scored again)."""
    source = registering.content_hash if registering is not None else ""
    return hashlib.sha256(f"{batch.content_hash}\0{source}".encode()).hexdigest()


def batch_job_name(batch: BatchModel, registering: JobModel | None) -> str:
    """`<endpoint>-<hash[:10]>`: a changed input, model or setting is a new Job, an unchanged one the same."""
    return f"{dns_name(batch.name)[:NAME_ROOM].rstrip('-')}-{run_hash(batch, registering)[:HASH_IN_NAME]}"


def claim_name(batch: BatchModel) -> str:
    return dns_name(batch.name, "batch")


def output_folder(batch: BatchModel) -> str:
    """The spec's output.path, on the claim (an absolute path or '..' stays inside it)."""
    parts = [p for p in PurePosixPath(batch.output).parts if p not in ("/", ".", "..")]
    return str(PurePosixPath(CLAIM_MOUNT, *parts)) if parts else f"{CLAIM_MOUNT}/predictions"


def batch_run(batch: BatchModel, ctx: Context) -> BatchRun:
    """The scorer's contract with every path inside the pod: one pod of one node's size scores, with
    max_concurrency mini-batches at once."""
    settings = batch.settings
    return BatchRun.model_validate({
        "endpoint": batch.name, "model_uri": batch.model, "tracking_uri": ctx.tracking_uri,
        "input": f"{FILES}/{batch.data}", "output": output_folder(batch), "mode": settings["mode"],
        "mini_batch_size": settings["mini_batch_size"], "error_threshold": settings["error_threshold"],
        "max_retries": settings["max_retries"], "timeout": settings["timeout"],
        "max_concurrency": settings["max_concurrency"], "nodes": 1,
        **({"code": f"{FILES}/{batch.code}", "scoring_script": batch.scoring_script}
           if batch.scoring_script is not None and batch.code is not None else {})})


def batch_objects(batch: BatchModel, env: EnvironmentModel, compute: ComputeModel | None, ctx: Context,
                  registering: JobModel | None, wave: int, storage_bytes: int) -> list[Object]:
    """The claim, the ConfigMap of the run's contract and the Job. `registering`: the job of the spec whose
    model it scores (the Job comes after it: an annotation, and the Argo CD sync wave after `wave`)."""
    name = batch_job_name(batch, registering)
    endpoint = dns_name(batch.name)
    own = labels(ctx.workspace, COMPONENT, name, content_hash=run_hash(batch, registering), tags=batch.tags)
    own["mlspec.io/endpoint"] = endpoint
    pods = selector_labels(ctx.workspace, COMPONENT, name)
    claim_labels = {**labels(ctx.workspace, COMPONENT, claim_name(batch), tags=batch.tags),
                    "mlspec.io/endpoint": endpoint}
    claim = k8s_object("v1", "PersistentVolumeClaim", metadata(claim_name(batch), ctx.namespace, claim_labels),
                       spec={"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": f"{storage_bytes // 2**20}Mi"}}})
    contract = batch_run(batch, ctx).text()
    config = k8s_object("v1", "ConfigMap", metadata(f"{name}-run", ctx.namespace, own), data={CONTRACT_KEY: contract})
    score = container(
        "score", image(batch.var),
        ["python", "-m", "mlspec.runtime.batch", f"{CONTRACT_DIR}/{CONTRACT_KEY}",
         "--result", f"{CLAIM_MOUNT}/{RESULTS}/{name}.json"], batch.size,
        env={**env.env, "HOME": SCRATCH, "MLFLOW_TRACKING_URI": ctx.tracking_uri},
        mounts=[{"name": "run", "mountPath": CONTRACT_DIR, "readOnly": True},
                {"name": "predictions", "mountPath": CLAIM_MOUNT}])
    extra: Object = {"initContainers": wait_for_tracking(batch.var, ctx)} if ctx.own_tracking else {}
    template_spec = pod_spec([score], restart_policy="Never", scheduling=scheduling(ctx, compute, batch.size.gpus),
                             volumes=[{"name": "run", "configMap": {"name": f"{name}-run"}},
                                      {"name": "predictions",
                                       "persistentVolumeClaim": {"claimName": claim_name(batch)}}], **extra)
    template_spec = with_tracking_credentials(ctx, template_spec)
    annotations = {SYNC_WAVE_ANNOTATION: str(wave + 1)}
    if registering is not None:
        annotations[DEPENDS_ANNOTATION] = f"Job/{job_name(registering)}"
    # One pod at a time: the claim is ReadWriteOnce, and the journal has one writer. A pod that fails is
    # replaced up to max_retries times, each resuming where the journal ends.
    spec: Object = {"backoffLimit": batch.settings["max_retries"], "parallelism": 1, "completions": 1,
                    "template": {"metadata": {"labels": {**own, **pods}}, "spec": template_spec}}
    job = k8s_object("batch/v1", "Job", metadata(name, ctx.namespace, own, annotations), spec=spec)
    return [claim, config, job]

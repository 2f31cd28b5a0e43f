"""A runner's `batch/v1` Job: one pod of a local engine's runner (sweep, pipeline, AutoML) on a contract in a
ConfigMap, named by its job's content hash, replaced after a disruption and failed at once by the runner's own
verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field

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

CONTRACT_DIR = "/etc/mlspec"
FAILED = [1, 2]  # a runner's exit codes for a run that failed (1) or a contract it cannot read (2)


@dataclass(frozen=True)
class Runner:
    """What runs in the pod.

    :param name: the container's name (``sweep``, ``pipeline``, ``automl``).
    :param module: the runner's module, run as ``python -m MODULE CONTRACT [ARGS]``.
    :param contract_key: the contract's file name in the ConfigMap, mounted read-only at ``CONTRACT_DIR``.
    :param contract: the contract's JSON text.
    :param restarts: pods replaced after a disruption (``backoffLimit``); the runner's own failure is never retried.
    :param deadline_s: the Job's ``activeDeadlineSeconds``; None: no deadline of its own.
    :param args: arguments after the contract's path.
    :param claim: a PersistentVolumeClaim mounted read-write at ``mount`` as the pod's volume ``volume``: what
        outlives the pod (a sweep's study, a pipeline's step results). None: none.
    """

    name: str
    module: str
    contract_key: str
    contract: str
    restarts: int
    deadline_s: int | None = None
    args: list[str] = field(default_factory=list)
    claim: str | None = None
    mount: str | None = None
    volume: str = "state"


def runner_objects(runner: Runner, job: JobModel, env: EnvironmentModel, compute: ComputeModel | None,
                   ctx: Context, depends_on: list[str], wave: int, extra_env: dict[str, str] | None = None
                   ) -> list[Object]:
    """The ConfigMap of the runner's contract and its Job (after `depends_on`, in sync wave `wave` + 1, as a command
    job). One pod at a time: a claim is ReadWriteOnce and a contract has one runner."""
    name = job_name(job)
    own = labels(ctx.workspace, COMPONENT, name, content_hash=job.content_hash)
    own["mlspec.io/job"] = dns_name(job.name)
    pods = selector_labels(ctx.workspace, COMPONENT, name)
    config = k8s_object("v1", "ConfigMap", metadata(f"{name}-run", ctx.namespace, own),
                        data={runner.contract_key: runner.contract})
    mounts = [{"name": "run", "mountPath": CONTRACT_DIR, "readOnly": True}]
    volumes: list[Object] = [{"name": "run", "configMap": {"name": f"{name}-run"}}]
    if runner.claim is not None:
        mounts.append({"name": runner.volume, "mountPath": runner.mount})
        volumes.append({"name": runner.volume, "persistentVolumeClaim": {"claimName": runner.claim}})
    process = container(
        runner.name, image(job.var),
        ["python", "-m", runner.module, f"{CONTRACT_DIR}/{runner.contract_key}", *runner.args], job.size,
        env={**env.env, **(extra_env or {}), "HOME": SCRATCH, "MLFLOW_TRACKING_URI": ctx.tracking_uri}, mounts=mounts)
    extra: Object = {"initContainers": wait_for_tracking(job.var, ctx)} if ctx.own_tracking else {}
    template_spec = pod_spec([process], restart_policy="Never", scheduling=scheduling(ctx, compute, job.size.gpus),
                             volumes=volumes, **extra)
    template_spec = with_tracking_credentials(ctx, template_spec)
    annotations = {SYNC_WAVE_ANNOTATION: str(wave + 1)}
    if depends_on:
        annotations[DEPENDS_ANNOTATION] = ",".join(f"Job/{other}" for other in depends_on)
    spec: Object = {"backoffLimit": runner.restarts, "parallelism": 1, "completions": 1,
                    "podFailurePolicy": {"rules": [
                        {"action": "FailJob", "onExitCodes": {"containerName": runner.name, "operator": "In",
                                                              "values": FAILED}}]}}
    if runner.deadline_s is not None:
        spec["activeDeadlineSeconds"] = runner.deadline_s
    spec["template"] = {"metadata": {"labels": {**own, **pods}}, "spec": template_spec}
    return [config, k8s_object("batch/v1", "Job", metadata(name, ctx.namespace, own, annotations), spec=spec)]


def claim(job: JobModel, ctx: Context, name: str, storage_bytes: int) -> Object:
    """A claim of the job's own (not of one run's: a changed job's Job mounts it too)."""
    claim_labels = {**labels(ctx.workspace, COMPONENT, name), "mlspec.io/job": dns_name(job.name)}
    return k8s_object("v1", "PersistentVolumeClaim", metadata(name, ctx.namespace, claim_labels),
                      spec={"accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": f"{storage_bytes // 2**20}Mi"}}})

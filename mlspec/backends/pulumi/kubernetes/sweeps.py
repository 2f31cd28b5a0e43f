"""A sweep as a `batch/v1` Job named by its content hash: one pod runs the local engine's sweep controller
(`python -m mlspec.runtime.sweep`), its trials processes in it, its Optuna study on a PersistentVolumeClaim.

The Job is named as a command job's is (an unchanged sweep is the same Job and is not run again). A pod that is
evicted, preempted or killed is replaced by the Job controller, and the new pod resumes the study on the claim: the
finished trials are kept and those that were running are asked again. The controller's own verdicts (no trial
succeeded, a bad contract) fail the Job at once instead of running the sweep again.
"""

from __future__ import annotations

from mlspec.backends.pulumi.kubernetes.context import Context, image
from mlspec.backends.pulumi.kubernetes.jobs import (
    COMPONENT,
    DEPENDS_ANNOTATION,
    SYNC_WAVE_ANNOTATION,
    job_name,
    node_contract,
    wait_for_tracking,
)
from mlspec.backends.pulumi.kubernetes.meta import Object, dns_name, k8s_object, labels, metadata, selector_labels
from mlspec.backends.pulumi.kubernetes.pods import SCRATCH, container, pod_spec, with_tracking_credentials
from mlspec.backends.pulumi.kubernetes.scheduling import scheduling
from mlspec.backends.pulumi.model import ComputeModel, EnvironmentModel, JobModel
from mlspec.runtime.sweep.contract import SweepRun, sweep_of, sweep_seed

CONTRACT_DIR = "/etc/mlspec"
CONTRACT_KEY = "sweeprun.json"
STUDY_MOUNT = "/var/lib/mlspec-sweep"  # the sweep's claim: <hash[:16]>/optuna.db and trial-N/ per content hash
RESTARTS = 3  # pods replaced after a disruption, each resuming the study
FAILED = [1, 2]  # the controller's exit codes for a sweep that failed (1) or a contract it cannot read (2)
GRACE_S = 300  # beyond limits.timeout: the controller stops the trials and registers the best one's model


def claim_name(job: JobModel) -> str:
    return dns_name(job.name, "sweep")


def sweep_run(job: JobModel, env: EnvironmentModel, ctx: Context) -> SweepRun:
    """The controller's contract with every path inside the pod; its trials' template is the command job's node
    contract (each trial has its own limit, `limits.trial_timeout`)."""
    assert job.sweep is not None
    template = node_contract(job, env, ctx, 0, job_name(job)).model_copy(update={"timeout": None})
    return SweepRun(sweep=sweep_of(job.name, job.command, job.sweep), template=template,
                    folder=f"{STUDY_MOUNT}/{job.content_hash[:16]}", seed=sweep_seed(job.content_hash))


def sweep_objects(job: JobModel, env: EnvironmentModel, compute: ComputeModel | None, ctx: Context,
                  depends_on: list[str], wave: int, storage_bytes: int) -> list[Object]:
    """The sweep's claim, the ConfigMap of its contract and its Job (after `depends_on`, in sync wave `wave` + 1,
    as a command job)."""
    name = job_name(job)
    own = labels(ctx.workspace, COMPONENT, name, content_hash=job.content_hash)
    own["mlspec.io/job"] = dns_name(job.name)
    pods = selector_labels(ctx.workspace, COMPONENT, name)
    # The claim is the sweep's, not the run's: a changed sweep's Job uses it too, in a folder of its own hash.
    claim_labels = {**labels(ctx.workspace, COMPONENT, claim_name(job)), "mlspec.io/job": dns_name(job.name)}
    claim = k8s_object("v1", "PersistentVolumeClaim", metadata(claim_name(job), ctx.namespace, claim_labels),
                       spec={"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": f"{storage_bytes // 2**20}Mi"}}})
    contract = sweep_run(job, env, ctx).model_dump_json(indent=2) + "\n"
    config = k8s_object("v1", "ConfigMap", metadata(f"{name}-run", ctx.namespace, own), data={CONTRACT_KEY: contract})
    controller = container(
        "sweep", image(job.var), ["python", "-m", "mlspec.runtime.sweep", f"{CONTRACT_DIR}/{CONTRACT_KEY}"],
        job.size, env={**env.env, **job.env, "HOME": SCRATCH, "MLFLOW_TRACKING_URI": ctx.tracking_uri},
        mounts=[{"name": "run", "mountPath": CONTRACT_DIR, "readOnly": True},
                {"name": "study", "mountPath": STUDY_MOUNT}])
    extra: Object = {"initContainers": wait_for_tracking(job.var, ctx)} if ctx.own_tracking else {}
    template_spec = pod_spec([controller], restart_policy="Never", scheduling=scheduling(ctx, compute, job.size.gpus),
                             volumes=[{"name": "run", "configMap": {"name": f"{name}-run"}},
                                      {"name": "study", "persistentVolumeClaim": {"claimName": claim_name(job)}}],
                             **extra)
    template_spec = with_tracking_credentials(ctx, template_spec)
    annotations = {SYNC_WAVE_ANNOTATION: str(wave + 1)}
    if depends_on:
        annotations[DEPENDS_ANNOTATION] = ",".join(f"Job/{other}" for other in depends_on)
    # One pod at a time (the claim is ReadWriteOnce, the study has one controller); a disrupted pod is replaced and
    # resumes, a failed sweep is not run again.
    spec: Object = {"backoffLimit": RESTARTS, "parallelism": 1, "completions": 1,
                    "podFailurePolicy": {"rules": [
                        {"action": "FailJob", "onExitCodes": {"containerName": "sweep", "operator": "In",
                                                              "values": FAILED}}]}}
    if job.timeout is not None:
        spec["activeDeadlineSeconds"] = int(job.timeout) + GRACE_S
    spec["template"] = {"metadata": {"labels": {**own, **pods}}, "spec": template_spec}
    workload = k8s_object("batch/v1", "Job", metadata(name, ctx.namespace, own, annotations), spec=spec)
    return [claim, config, workload]

"""A training job as a `batch/v1` Job named by its content hash, its run contract in a ConfigMap; several nodes
as an Indexed Job whose pods find each other through a headless Service (torchrun's rendezvous on pod 0).

A Job's pod template cannot change, and an applied Job that exists is left as it is: naming it by content hash
makes a changed spec a new Job and an unchanged one a no-op, so it never re-runs. For that the Job must outlive
its run (no ttlSecondsAfterFinished): deleting it would make the next apply run it again.
"""

from __future__ import annotations

from typing import Any

from mlspec.backends.pulumi.compile import JOB_FILES
from mlspec.backends.pulumi.kubernetes.context import Context, image
from mlspec.backends.pulumi.kubernetes.cronjobs import SCHEDULED_CONTRACT, cron_job
from mlspec.backends.pulumi.kubernetes.meta import Object, dns_name, k8s_object, labels, metadata, selector_labels
from mlspec.backends.pulumi.kubernetes.pods import container, pod_spec, with_tracking_credentials
from mlspec.backends.pulumi.kubernetes.scheduling import scheduling
from mlspec.backends.pulumi.kubernetes.workspace import allow_among
from mlspec.backends.pulumi.model import ComputeModel, EnvironmentModel, JobModel, ResourceSize
from mlspec.runtime.jobrun import JobRun
from mlspec.runtime.multinode import RENDEZVOUS_PORT, NodeLayout, for_node
from mlspec.spec.schedule import SCHEDULED_TAG

COMPONENT = "job"
FILES = JOB_FILES  # the job's code and data in its image (templates/pulumi/job.Dockerfile.j2)
RUN_DIR = "/tmp/mlspec-job"  # outputs and the log of the run, on the pod's writable scratch volume
CONTRACTS = "/etc/mlspec"  # the ConfigMap of run contracts, one per node
HASH_IN_NAME = 10
WAIT_SIZE = ResourceSize(cpus=0.1, memory_mb=128, gpus=0)
# Pods of an Indexed Job are named <job>-<index>: the name leaves room for the index within a DNS label.
NAME_ROOM = 63 - HASH_IN_NAME - 1 - 4
INDEX = "JOB_COMPLETION_INDEX"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
DEPENDS_ANNOTATION = "mlspec.io/depends-on"  # "Kind/name, ...": created, and ready, before this object
SYNC_WAVE_ANNOTATION = "argocd.argoproj.io/sync-wave"


def job_name(job: JobModel) -> str:
    """`<job>-<hash[:10]>`: a changed job is a new Job, an unchanged one the same."""
    return f"{dns_name(job.name)[:NAME_ROOM].rstrip('-')}-{job.content_hash[:HASH_IN_NAME]}"


def node_contract(job: JobModel, env: EnvironmentModel, ctx: Context, node: int, service: str) -> JobRun:
    """What the training runner of node `node` runs: the job's contract with every path inside the pod, made a
    node's by `for_node` (node 0 registers the job's models; torchrun's rendezvous on pod 0, `<job>-0.<service>`,
    its stable name through the headless Service). The runner does not retry (backoffLimit does: a new pod, on any
    node) and runs the command alone (torchrun, when the job asks for it, is part of the command). No peer
    lifeline: a retried pod would wait for peers that finished already; the Job's own deadline bounds a hang."""
    inputs = {k: {"path": f"{FILES}/{v['path']}"} if isinstance(v, dict) else {"value": v}
              for k, v in job.inputs.items()}
    outputs = {name: {**output, "path": f"{RUN_DIR}/outputs/{name}"} for name, output in job.outputs.items()}
    layout = NodeLayout(job.nodes, f"{service}-0.{service}", job.distribution, job.processes_per_node)
    return JobRun.model_validate(for_node({
        "job": job.name, "experiment": job.experiment, "tracking_uri": ctx.tracking_uri,
        "artifact_location": "mlflow-artifacts:/" + job.experiment, "command": job.command,
        "code": f"{FILES}/{job.code}".rstrip("/") if job.code else None, "workdir": RUN_DIR,
        "inputs": inputs, "outputs": outputs, "env": {**env.env, **job.env},
        "timeout": job.timeout, "retries": 0, "content_hash": job.content_hash,
        "tags": {"mlspec.job": job.name, "mlspec.hash": job.content_hash, "mlspec.workspace": ctx.workspace}},
        layout, node))


def wait_for_tracking(image_key: str, ctx: Context) -> list[Object]:
    """An init container (in the image of `image_key`) that holds a run until the tracking server answers:
    `kubectl apply` starts Jobs and the server together, and a run that cannot reach it would fail (Argo CD's sync
    waves order them already)."""
    probe = ("import sys, time, urllib.request\n"
             "for _ in range(300):\n"
             "    try:\n"
             "        urllib.request.urlopen(sys.argv[1] + '/health', timeout=5); break\n"
             "    except Exception: time.sleep(2)\n"
             "else: sys.exit('the tracking server did not answer in 10 minutes')")
    return [container("wait-for-tracking", image(image_key), ["python", "-c", probe, ctx.tracking_uri.rstrip("/")],
                      WAIT_SIZE, env={"HOME": "/tmp"})]


def job_objects(job: JobModel, env: EnvironmentModel, compute: ComputeModel | None, ctx: Context,
                depends_on: list[str], wave: int) -> list[Object]:
    """The ConfigMap of run contracts, the Job, and for several nodes its headless Service and the NetworkPolicy
    that lets its pods reach each other. `depends_on`: the Jobs whose models it reads (an annotation, and the
    Argo CD sync wave `wave`, after theirs); `kubectl apply` does not order them (see the manifests' README)."""
    name = job_name(job)
    own = labels(ctx.workspace, COMPONENT, name, content_hash=job.content_hash)
    own["mlspec.io/job"] = dns_name(job.name)
    pods = selector_labels(ctx.workspace, COMPONENT, name)
    contracts = {f"node-{n}.json": node_contract(job, env, ctx, n, name).model_dump_json(indent=2) + "\n"
                 for n in range(job.nodes)}
    if job.schedule is not None:  # what the CronJob's pods run: the same run, its MLflow run tagged as scheduled
        scheduled = node_contract(job, env, ctx, 0, name)
        scheduled = scheduled.model_copy(update={"tags": {**scheduled.tags, SCHEDULED_TAG: "true"}})
        contracts[SCHEDULED_CONTRACT] = scheduled.model_dump_json(indent=2) + "\n"
    config = k8s_object("v1", "ConfigMap", metadata(f"{name}-run", ctx.namespace, own), data=contracts)
    indexed = job.nodes > 1
    contract = f"{CONTRACTS}/node-$({INDEX}).json" if indexed else f"{CONTRACTS}/node-0.json"
    variables: dict[str, Any] = {**env.env, **job.env, "HOME": "/tmp", "MLFLOW_TRACKING_URI": ctx.tracking_uri}
    if indexed:
        variables[INDEX] = {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}
    train = container(
        "train", image(job.var),
        ["python", "-m", "mlspec.runtime.train", contract, "--result", f"{RUN_DIR}/result.json"], job.size,
        env=variables, ports={"rendezvous": RENDEZVOUS_PORT} if indexed else None,
        mounts=[{"name": "run", "mountPath": CONTRACTS, "readOnly": True}])
    extra: Object = {"subdomain": name} if indexed else {}
    if ctx.own_tracking:
        extra["initContainers"] = wait_for_tracking(job.var, ctx)
    template_spec = pod_spec([train], restart_policy="Never", scheduling=scheduling(ctx, compute, job.size.gpus),
                             volumes=[{"name": "run", "configMap": {"name": f"{name}-run"}}], **extra)
    template_spec = with_tracking_credentials(ctx, template_spec)
    annotations = {SYNC_WAVE_ANNOTATION: str(wave + 1)}  # wave 0: the workspace and its tracking server
    if depends_on:
        annotations[DEPENDS_ANNOTATION] = ",".join(f"Job/{name}" for name in depends_on)
    spec: Object = {"backoffLimit": job.retries}
    if job.timeout is not None:
        spec["activeDeadlineSeconds"] = max(1, int(job.timeout))
    if indexed:
        spec.update(completionMode="Indexed", completions=job.nodes, parallelism=job.nodes)
    spec["template"] = {"metadata": {"labels": {**own, **pods}}, "spec": template_spec}
    workload = k8s_object("batch/v1", "Job", metadata(name, ctx.namespace, own, annotations), spec=spec)
    if not indexed:
        return [config, workload] + ([cron_job(job, workload, contract)] if job.schedule is not None else [])
    # Pods of an Indexed Job are <job>-<index>.<subdomain>: the headless Service gives them those DNS names,
    # published before they are ready so that node 0's rendezvous resolves while the others start.
    service = k8s_object("v1", "Service", metadata(name, ctx.namespace, own),
                         spec={"clusterIP": "None", "publishNotReadyAddresses": True, "selector": pods,
                               "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT,
                                          "targetPort": "rendezvous", "protocol": "TCP"}]})
    return [config, service, workload, allow_among(ctx, name, COMPONENT, pods)]

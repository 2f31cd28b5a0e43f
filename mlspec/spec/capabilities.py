"""Which spec fields each target honours: the one table that validate, plan, up, compile and `mlspec targets` read.

Every field of every spec model has a row here (a test walks the JSON Schema to keep it so). A row says, for each
target, whether the target honours the field, approximates it (and how), has no use for it (a setting of another
target), ignores it harmlessly (a warning), or refuses it (an error at the field's line naming the targets that
honour it). Rows are looked up along a model's class hierarchy, so the fields every resource shares are written once
on `Resource`; the empty field name is the row of a whole kind or type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

Target = Literal["local", "docker", "kubernetes"]
TARGETS: tuple[Target, ...] = ("local", "docker", "kubernetes")

# yes: honoured. approx: honoured in a weaker form, the note says how. n/a: a setting of other targets, unused here
# by design. ignored: accepted with a warning, because ignoring it changes nothing that matters on this target.
# no: an error where a spec sets it.
Level = Literal["yes", "approx", "n/a", "ignored", "no"]
LEVELS: tuple[Level, ...] = ("yes", "approx", "n/a", "ignored", "no")


@dataclass(frozen=True, slots=True)
class Support:
    level: Level
    note: str = ""
    # Values refused (an error at the field's line) though the field is otherwise honoured; the note says why.
    refused: tuple[Any, ...] = ()


YES = Support("yes")


def approx(note: str) -> Support:
    return Support("approx", note)


def na(note: str) -> Support:
    return Support("n/a", note)


def ignored(note: str) -> Support:
    return Support("ignored", note)


def no(note: str) -> Support:
    return Support("no", note)


def refusing(values: tuple[Any, ...], note: str, level: Level = "yes") -> Support:
    """Honoured (or approximated), except for `values`, which are errors: the note says why."""
    return Support(level, note, values)


KUBERNETES_LATER = no("the kubernetes target is not available yet")
# Targets no spec can deploy to yet, with why: a check against one is a single error, not one per field.
UNAVAILABLE: dict[Target, str] = {"kubernetes": KUBERNETES_LATER.note}


@dataclass(frozen=True, slots=True)
class Row:
    local: Support = YES
    docker: Support = YES
    kubernetes: Support = KUBERNETES_LATER

    def on(self, target: Target) -> Support:
        support: Support = getattr(self, target)
        return support


ALL = Row()
_NO_AUTOSCALER = "no autoscaler on this target yet: give instance_count instead"
_NO_DOCKER_LIVENESS = "Docker does not restart an unhealthy container; only readiness is checked there"
_STARTUP = ("a new replica is probed from its start, every 0.1 s; the deadline for it to become ready is "
            "initial_delay + period × failure_threshold")
_ONE_HOST = "every node is this one host"
_UNLABELLED = Row(docker=ignored("nothing on the Docker host stands for it alone to carry labels"))
_K8S_YES = Row(kubernetes=YES)
_NO_AUTOSCALER_ROW = Row(docker=no(_NO_AUTOSCALER), kubernetes=YES)

TABLE: dict[str, dict[str, Row]] = {
    "Resource": {
        "name": ALL,
        "kind": ALL,
        "description": ALL,
        "tags": ALL,
    },
    "Workspace": {
        "": ALL,
        "storage": ALL,
        "tracking": ALL,
        "defaults": ALL,
    },
    "Storage": {
        "path": Row(docker=na("the docker target keeps the workspace in a volume (storage.volume)")),
        "volume": Row(local=na("the local target keeps the workspace in a folder (storage.path)")),
        "size": Row(local=na("a folder has no size"), docker=na("a Docker volume has no size")),
    },
    "Tracking": {
        "backend": ALL,
        "uri": ALL,
    },
    "Defaults": {"compute": ALL, "environment": ALL},
    "ComputeBase": {
        "type": ALL,  # the type's own row ('') says what the target does with it
        "target": ALL,  # checked by value: it must name the target the command deploys to
        "resources": ALL,
    },
    "Resources": {
        "cpus": Row(local=approx("when written out, each job node, replica or batch run is pinned to that many "
                                 "whole cores (a fraction rounds up; nodes take the cores in turn)"),
                    docker=approx("Docker CPU shares: a relative weight under contention, not a hard limit")),
        "memory": Row(local=approx("when written out, a job node, replica or batch run whose process tree's "
                                   "resident memory goes over it is stopped: a job fails saying so, a replica "
                                   "restarts")),
        "gpus": Row(local=approx("when written out, CUDA_VISIBLE_DEVICES names each node's own GPUs of this "
                                 "machine's; more than it has is refused when planning")),
        "gpu_type": Row(local=no("this machine's GPUs are what they are"),
                        docker=no("a Docker host's GPUs are what they are")),
    },
    "LocalCompute": {"": Row(docker=approx("containers on the Docker host")), "tags": _UNLABELLED,
                     "description": _UNLABELLED},
    "ClusterCompute": {
        "": Row(local=approx("jobs run as processes on this machine"),
                docker=approx("jobs run as containers on the Docker host")),
        "min_nodes": Row(local=ignored("processes start at once; there are no nodes to keep warm"),
                         docker=ignored("containers start at once; there are no nodes to keep warm")),
        "max_nodes": Row(docker=approx("the cluster's jobs take turns in max_nodes lanes: each waits for the one "
                                       "ahead of it in its lane, not for any free node")),
        "idle_time_before_scale_down": Row(local=ignored("no node is held after a job ends"),
                                           docker=ignored("no node is held after a job ends")),
        "low_priority": Row(local=ignored("this machine has no preemptible capacity"),
                            docker=ignored("a Docker host has no preemptible capacity")),
        "tags": _UNLABELLED,
        "description": _UNLABELLED,
    },
    "InstanceCompute": {
        "": Row(local=approx("JupyterLab as a process on this machine")),
        "resources": Row(local=no("JupyterLab runs without the compute's CPU, memory and GPU limits here")),
        "environment": ALL,
        "port": ALL,
        "idle_time_before_shutdown": Row(local=approx("stopped after that long with no API request, kernel message "
                                                      "or terminal and no busy kernel, until `mlspec compute start`"),
                                         docker=no("idle instances are not stopped on the docker target yet")),
    },
    "InferenceClusterCompute": {
        "": Row(local=approx("deployments run as processes on this machine"),
                docker=approx("deployments run as containers on the Docker host")),
        "nodes": Row(local=ignored(_ONE_HOST), docker=ignored(_ONE_HOST)),
        "tags": _UNLABELLED,
        "description": _UNLABELLED,
    },
    "AttachedCompute": {
        "": Row(local=no("attached compute is a Docker host or a Kubernetes context; use type: local here"),
                docker=no("one Docker host per stack for now: set the stack setting mlspec:dockerHost (a "
                          "Kubernetes context needs the kubernetes target)")),
        "host": ALL,
        "kube_context": ALL,
        "namespace": ALL,
    },
    "Environment": {
        "": ALL,
        "tags": _UNLABELLED,
        "description": _UNLABELLED,
        "image": Row(local=na("local environments are virtualenvs on this machine")),
        "python": Row(local=approx("environments are virtualenvs on mlspec's own interpreter: another "
                                   "version, written out, is refused when planning"),
                      docker=no("the image's Python is its base image's: set image (or the stack's "
                                "mlspec:baseImage)")),
        "requirements": ALL,
        "conda_file": Row(local=approx("its pip section is installed into a virtualenv; other conda packages "
                                       "are refused"),
                          docker=no("declare requirements instead")),
        "build": Row(local=no("a Dockerfile needs a Docker engine: use the docker target"),
                     docker=no("your own Dockerfile is not supported yet; declare requirements instead")),
        "wheelhouse": Row(docker=approx("the stack's mlspec:wheelhouse setting is used instead")),
        "environment_variables": ALL,
    },
    "Build": {"context": ALL, "dockerfile": ALL},
    "Data": {
        "": ALL,
        "tags": _UNLABELLED,
        "description": _UNLABELLED,
        "type": ALL,
        "path": ALL,
        "datastore": Row(local=no("only the workspace's own datastore exists"),
                         docker=no("only the workspace's own datastore exists")),
    },
    "Job": {
        "": ALL,
        "type": ALL,
        "command": ALL,
        "code": ALL,
        "environment": ALL,
        "compute": ALL,
        "inputs": ALL,
        "outputs": ALL,
        "resources": ALL,
        "distribution": Row(docker=no("distributed jobs need the local or kubernetes target")),
        "environment_variables": ALL,
        "timeout": ALL,
        "retries": ALL,
        "experiment_name": ALL,
    },
    "PathInput": {"type": ALL, "path": ALL},
    "Output": {"type": ALL, "register_as": ALL, "flavor": ALL},
    "JobResources": {"instance_count": Row(local=approx("nodes are process trees on this machine; without a "
                                                        "distribution each runs the command with NODE_RANK set"),
                                           docker=no("a job runs in one container on the docker target"))},
    "Distribution": {"type": ALL, "process_count_per_instance": ALL},
    "Model": {
        "": ALL,
        "job": ALL,
        "output": ALL,
        "path": Row(docker=no("models registered from a path are not compiled for docker yet")),
        "flavor": ALL,
        "loader": ALL,
        "signature": ALL,
        "aliases": Row(docker=approx("set when the job's container registers; an alias change re-runs it, and "
                                     "identical model files reuse their version")),
    },
    "Signature": {"inputs": ALL, "outputs": ALL},
    "Column": {"name": ALL, "type": ALL},
    "OnlineEndpoint": {
        "": _K8S_YES,
        "type": _K8S_YES,
        "auth": Row(kubernetes=Support("yes", "the gateway reads the keys' SHA-256 digests from the Secret "
                                              "<endpoint>-gateway-keys, which the Pulumi program makes from "
                                              "generated keys (plain manifests: create it yourself)")),
        "deployments": _K8S_YES,
        "traffic": _K8S_YES,
        "mirror_traffic": _K8S_YES,
        "port": Row(kubernetes=na("the gateway's ClusterIP Service <endpoint> listens on port 80")),
    },
    "Deployment": {
        "model": Row(kubernetes=approx("a model a job of the spec registers is served at @latest; the job's "
                                       "content hash on the pod template rolls the replicas when it retrains")),
        "environment": _K8S_YES,
        "compute": _K8S_YES,
        "instance_count": _K8S_YES,
        "workers": _K8S_YES,
        "autoscale": Row(docker=no(_NO_AUTOSCALER),
                         kubernetes=approx("a HorizontalPodAutoscaler (autoscaling/v2) on CPU utilisation")),
        "probes": _K8S_YES,
        "request_settings": _K8S_YES,
        "batching": _K8S_YES,
        "resources": Row(kubernetes=Support("yes", "requests equal to limits (GPUs as nvidia.com/gpu, with a "
                                                   "toleration of GPU nodes' taint)")),
        "environment_variables": _K8S_YES,
    },
    "Autoscale": {
        "min_instances": Row(docker=no(_NO_AUTOSCALER), kubernetes=refusing(
            (0,), "the HPA's minReplicas; 0 (scale to zero) is refused: an HPA keeps at least one replica")),
        "max_instances": _NO_AUTOSCALER_ROW,
        "target_concurrency": Row(docker=no(_NO_AUTOSCALER), kubernetes=approx(
            "scaled on CPU utilisation: the target's share of min(max_concurrent_requests_per_instance, 100) as a "
            "percentage of the replica's CPU request (70% by default); a GPU replica's CPU tells little of its "
            "load")),
        "target_rps": Row(docker=no(_NO_AUTOSCALER), kubernetes=no(
            "a request rate needs a custom-metrics adapter, which this target does not configure: give "
            "target_concurrency (scaled on CPU utilisation)")),
        "window": Row(docker=no(_NO_AUTOSCALER), kubernetes=ignored(
            "CPU usage is averaged over the cluster's metrics-server window, not one of the HPA's")),
        "scale_up_delay": Row(docker=no(_NO_AUTOSCALER), kubernetes=approx(
            "the HPA's scale-up stabilisation window, checked on its own sync period (15 s by default)")),
        "scale_down_delay": Row(docker=no(_NO_AUTOSCALER), kubernetes=approx(
            "the HPA's scale-down stabilisation window, checked on its own sync period (15 s by default)")),
    },
    "Probes": {"liveness": _K8S_YES, "readiness": _K8S_YES},
    "LivenessProbe": {
        "initial_delay": Row(docker=no(_NO_DOCKER_LIVENESS), kubernetes=YES),
        "period": Row(docker=no(_NO_DOCKER_LIVENESS), kubernetes=YES),
        "timeout": Row(docker=no(_NO_DOCKER_LIVENESS), kubernetes=YES),
        "failure_threshold": Row(docker=no(_NO_DOCKER_LIVENESS), kubernetes=YES),
        "success_threshold": Row(docker=no(_NO_DOCKER_LIVENESS),
                                 kubernetes=no("Kubernetes takes 1 success and no other for a liveness probe")),
    },
    "ReadinessProbe": {
        "initial_delay": Row(local=approx(_STARTUP), kubernetes=approx(
            "the start-up probe's initial delay; with its period × failure_threshold it is a new replica's "
            "deadline to load its model")),
        "period": _K8S_YES,
        "timeout": _K8S_YES,
        "failure_threshold": _K8S_YES,
        "success_threshold": _K8S_YES,
    },
    "RequestSettings": {
        "request_timeout": _K8S_YES,
        "max_concurrent_requests_per_instance": Row(kubernetes=approx(
            "the gateway holds each deployment to this × its replicas (instance_count, or max_instances when "
            "autoscaled) in flight, shared among its pods; its Service spreads connections, not requests, so one "
            "replica may hold more")),
        "max_queue_wait": _K8S_YES,
        "max_body_size": _K8S_YES,
    },
    "Batching": {"max_batch_size": _K8S_YES, "max_wait": _K8S_YES},
    "BatchEndpoint": {
        "": Row(docker=no("batch endpoints are not compiled for docker yet")),
        "type": ALL,
        "model": ALL,
        "input": ALL,
        "output": ALL,
        "environment": ALL,
        "compute": ALL,
        "mini_batch_size": ALL,
        "error_threshold": ALL,
        "retry_settings": ALL,
        "max_concurrency": ALL,
    },
    "BatchOutput": {"path": ALL, "mode": ALL},
    "BatchRetry": {"max_retries": ALL, "timeout": ALL},
}


def row_for(model: type, field: str) -> Row | None:
    """The row of a field of a spec model, looked up along its class hierarchy; '' is the model's own row."""
    classes = model.__mro__[:1] if field == "" else model.__mro__
    for cls in classes:
        row = TABLE.get(cls.__name__, {}).get(field)
        if row is not None:
            return row
    return None


def honouring(model: type, field: str) -> list[Target]:
    """The targets that honour (or approximate) a field, and the kind or type it belongs to."""
    rows = [r for r in (row_for(model, field), row_for(model, "")) if r is not None]
    return [t for t in TARGETS if rows and all(r.on(t).level in ("yes", "approx") for r in rows)]


@dataclass(frozen=True, slots=True)
class FieldRow:
    """One line of the printed table: a field as a spec writes it (`deployments.*.probes`), and its row."""

    kind: str  # 'Compute (cluster)', 'Job'
    path: str  # '' for the kind or type itself
    row: Row


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    """The spec models a field's annotation holds (directly, or in a dict, list or union), and whether by key."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found.extend(_nested_models(arg))
    return found


def _within(parent: Row, row: Row) -> Row:
    """A field as its target sees it: under a refused field or kind, it is refused too."""
    def one(target: Target) -> Support:
        return parent.on(target) if parent.on(target).level == "no" else row.on(target)

    return Row(*(one(t) for t in TARGETS))


def _walk(model: type[BaseModel], prefix: str, kind: str, parent: Row) -> list[FieldRow]:
    rows: list[FieldRow] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        row = _within(parent, row_for(model, name) or ALL)
        rows.append(FieldRow(kind, path, row))
        keyed = get_origin(info.annotation) is dict or any(get_origin(a) is dict for a in get_args(info.annotation))
        for nested in _nested_models(info.annotation):
            rows.extend(_walk(nested, f"{path}.*." if keyed else f"{path}.", kind, row))
    return rows


def field_rows() -> list[FieldRow]:
    """Every field of every kind, as documents write them, with its row: what `mlspec targets` prints."""
    from mlspec.spec import KINDS

    rows: list[FieldRow] = []
    for kind, entry in KINDS.items():
        variants = entry.items() if isinstance(entry, dict) else [("", entry)]
        for variant, model in variants:
            label = f"{kind} ({variant})" if variant else kind
            own = row_for(model, "") or ALL
            rows.append(FieldRow(label, "", own))
            rows.extend(_walk(model, "", label, own))
    return rows

"""ResourceQuotas: the workspace's whole share of the cluster, and each cluster compute's max_nodes."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from mlspec.backends.pulumi.kubernetes.context import Context
from mlspec.backends.pulumi.kubernetes.meta import Object, k8s_object, labels, metadata
from mlspec.backends.pulumi.kubernetes.pods import GPU_RESOURCE, resources
from mlspec.backends.pulumi.kubernetes.scheduling import priority_class
from mlspec.backends.pulumi.model import ComputeModel

DEFAULT_SURGE = 0.25  # a Deployment's rolling update adds this share of its replicas (rounded up) while it rolls
_MEMORY = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}


def cluster_quota(ctx: Context, compute: ComputeModel) -> Object:
    """At most max_nodes of the cluster's pods at once: a quota scoped to the cluster's PriorityClass, which only
    its pods carry. A job's pods beyond it are not created until earlier ones finish (the Job controller retries),
    which is how a cluster's jobs take turns."""
    hard = _hard(_amounts(resources(compute.size)["requests"]), compute.max_nodes)
    return k8s_object("v1", "ResourceQuota",
                      metadata(f"cluster-{compute.name}", ctx.namespace,
                               labels(ctx.workspace, "compute", compute.name, tags=compute.tags)),
                      spec={"hard": hard, "scopeSelector": {"matchExpressions": [
                          {"scopeName": "PriorityClass", "operator": "In",
                           "values": [priority_class(ctx, compute)]}]}})


def workspace_quota(ctx: Context, objects: Iterable[Object], clusters: Iterable[ComputeModel],
                    tags: dict[str, str]) -> Object:
    """The namespace's quota, summed from the workloads themselves, so it holds exactly what they may run at once:
    each Deployment's most replicas (its HPA's maxReplicas where one scales it) plus its rolling-update surge, each
    StatefulSet's replicas, each Job's parallelism, all times their pods' requests; a cluster's jobs count as the
    cluster's max_nodes nodes of its size (its own quota bounds them), not job by job."""
    objects = list(objects)
    clusters = list(clusters)
    scaled = {o["spec"]["scaleTargetRef"]["name"]: o["spec"]["maxReplicas"] for o in objects
              if o["kind"] == "HorizontalPodAutoscaler"}
    classes = {priority_class(ctx, c) for c in clusters}
    total: dict[str, float] = {}
    pods = 0
    for obj in objects:
        count = _pods_at_once(obj, scaled)
        if count == 0:
            continue
        pod = obj["spec"]["template"]["spec"]
        if pod.get("priorityClassName") in classes:
            continue
        for container in pod["containers"]:
            for key, amount in _amounts(container.get("resources", {}).get("requests", {})).items():
                total[key] = total.get(key, 0) + amount * count
        pods += count
    for compute in clusters:
        for key, amount in _amounts(resources(compute.size)["requests"]).items():
            total[key] = total.get(key, 0) + amount * compute.max_nodes
        pods += compute.max_nodes
    hard = _hard(total, 1)
    hard["pods"] = str(pods)
    return k8s_object("v1", "ResourceQuota", metadata("workspace", ctx.namespace,
                                                      labels(ctx.workspace, "workspace", ctx.workspace, tags=tags)),
                      spec={"hard": dict(sorted(hard.items()))})


def _pods_at_once(obj: Object, scaled: dict[str, int]) -> int:
    kind = obj["kind"]
    if kind == "Deployment":
        replicas = max(obj["spec"].get("replicas", 1), scaled.get(obj["metadata"]["name"], 0))
        surge = obj["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxSurge", f"{DEFAULT_SURGE:.0%}")
        if obj["spec"].get("strategy", {}).get("type") == "Recreate":
            return int(replicas)
        extra = math.ceil(replicas * int(surge[:-1]) / 100) if isinstance(surge, str) else int(surge)
        return int(replicas + extra)
    if kind == "StatefulSet":
        return int(obj["spec"].get("replicas", 1))
    if kind == "Job":
        return int(obj["spec"].get("parallelism", 1))
    return 0


def _amounts(requests: dict[str, str]) -> dict[str, float]:
    """Requests in millicores, MiB and whole GPUs."""
    found: dict[str, float] = {}
    for key, value in requests.items():
        if key == "cpu":
            found["cpu"] = float(value[:-1]) if value.endswith("m") else float(value) * 1000
        elif key == "memory":
            number, unit = re.fullmatch(r"([\d.]+)([KMGT]i)?", value).groups()  # type: ignore[union-attr]
            found["memory"] = float(number) * _MEMORY.get(unit or "", 1 / 2**20)
        else:
            found[key] = float(value)
    return found


def _hard(amounts: dict[str, float], times: int) -> dict[str, str]:
    hard: dict[str, str] = {}
    for key, amount in sorted(amounts.items()):
        total = amount * times
        if key == "cpu":
            hard["requests.cpu"] = hard["limits.cpu"] = f"{math.ceil(total)}m"
        elif key == "memory":
            hard["requests.memory"] = hard["limits.memory"] = f"{math.ceil(total)}Mi"
        elif key == GPU_RESOURCE and total:
            hard[f"requests.{GPU_RESOURCE}"] = str(math.ceil(total))
    if "pods" not in hard:
        hard["pods"] = str(times)
    return dict(sorted(hard.items()))

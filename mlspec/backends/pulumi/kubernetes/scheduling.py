"""A compute as scheduling: node pool and GPU selectors, tolerations, and a PriorityClass per cluster."""

from __future__ import annotations

from mlspec.backends.pulumi.kubernetes.context import Context
from mlspec.backends.pulumi.kubernetes.meta import Object, dns_name, k8s_object, labels, metadata
from mlspec.backends.pulumi.kubernetes.pods import GPU_RESOURCE
from mlspec.backends.pulumi.model import ComputeModel

# The label NVIDIA's GPU feature discovery puts on each GPU node: where a spec names a gpu_type.
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
HOSTNAME_LABEL = "kubernetes.io/hostname"  # one value per node: spreading over it spreads over nodes
# GPU node pools of the managed services carry this taint, so only pods that ask for GPUs land there.
GPU_TOLERATION: Object = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
# The taints spot (preemptible) node pools carry on AKS and GKE: a low-priority cluster's pods tolerate them, so
# they may run on that cheaper, reclaimable capacity (they still run on ordinary nodes where there is room).
SPOT_TOLERATIONS: tuple[Object, ...] = (
    {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot", "effect": "NoSchedule"},
    {"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
)
CLUSTER_PRIORITY = 0  # a cluster's own class: the default level, there only to scope its quota
LOW_PRIORITY = -100  # below every default-priority pod: preempted first, and never preempts another


def priority_class(ctx: Context, compute: ComputeModel) -> str:
    """The PriorityClass of a cluster's pods. PriorityClasses are cluster-wide, so the namespace is in the name."""
    return dns_name(ctx.namespace, compute.name)


def priority_class_object(ctx: Context, compute: ComputeModel) -> Object:
    low = compute.low_priority
    return k8s_object(
        "scheduling.k8s.io/v1", "PriorityClass",
        metadata(priority_class(ctx, compute), None, labels(ctx.workspace, "compute", compute.name, tags=compute.tags)),
        value=LOW_PRIORITY if low else CLUSTER_PRIORITY, globalDefault=False,
        preemptionPolicy="Never" if low else "PreemptLowerPriority",
        description=f"mlspec cluster '{compute.name}' of workspace '{ctx.workspace}'"
                    + (" (low priority: preemptible capacity)" if low else ""))


def scheduling(ctx: Context, compute: ComputeModel | None, gpus: int) -> Object:
    """The pod spec fields that put a compute's pods on its nodes: nodeSelector (its node pool, its GPU model),
    tolerations (GPU and spot taints) and, for a cluster, its PriorityClass."""
    if compute is None:
        return {"tolerations": [dict(GPU_TOLERATION)]} if gpus else {}
    selector = dict(ctx.node_pools.get(compute.name, {}))
    if compute.gpu_type:
        selector[GPU_PRODUCT_LABEL] = compute.gpu_type
    tolerations = [dict(GPU_TOLERATION)] if gpus else []
    if compute.low_priority:
        tolerations += [dict(t) for t in SPOT_TOLERATIONS]
    fields: Object = {}
    if selector:
        fields["nodeSelector"] = dict(sorted(selector.items()))
    if tolerations:
        fields["tolerations"] = tolerations
    if compute.type == "cluster":
        fields["priorityClassName"] = priority_class(ctx, compute)
    return fields


def replica_scheduling(ctx: Context, compute: ComputeModel | None, gpus: int, pods: dict[str, str]) -> Object:
    """Where an online deployment's replicas run. On an inference cluster: its node pool and GPU placement, and
    replicas spread over its nodes (at most one more on any node than on another, where the scheduler can), so a
    lost node takes few of them; elsewhere only the GPU toleration its size needs."""
    if compute is None or compute.type != "inference-cluster":
        return scheduling(ctx, None, gpus)
    fields = scheduling(ctx, compute, gpus)
    fields["topologySpreadConstraints"] = [{
        "maxSkew": 1, "topologyKey": HOSTNAME_LABEL, "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": dict(pods)}}]
    return fields

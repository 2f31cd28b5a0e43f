"""What keeps an online endpoint's pods available, scaled and reachable only as intended: PodDisruptionBudgets,
HorizontalPodAutoscalers and NetworkPolicies."""

from __future__ import annotations

from typing import Any

from mlspec.backends.pulumi.kubernetes.meta import Object, k8s_object, metadata
from mlspec.backends.pulumi.model import CompileError
from mlspec.spec.endpoint import KNATIVE_CONCURRENCY_TARGET, Autoscale


def disruption_budget(name: str, namespace: str, object_labels: dict[str, str], selector: dict[str, str]) -> Object:
    """At most one pod of the workload evicted at a time (a node drain, an upgrade). maxUnavailable rather than
    minAvailable: with a single replica a minAvailable of 1 would block every drain for good, while maxUnavailable
    1 lets it move (a short gap: give two instances for none); with more replicas both read the same."""
    return k8s_object("policy/v1", "PodDisruptionBudget", metadata(name, namespace, object_labels),
                      spec={"maxUnavailable": 1, "selector": {"matchLabels": dict(selector)}})


def cpu_utilisation(autoscale: Autoscale, max_concurrent_per_instance: int) -> int:
    """The CPU utilisation (percent of the request) that stands for the concurrency target: a replica holding
    `target` requests of the `min(limit, 100)` it can hold is taken to be that busy (Knative's 70% by default)."""
    metric, target = autoscale.target(max_concurrent_per_instance)
    if metric != "concurrency":
        raise CompileError("target_rps needs a request-rate metric, which the kubernetes target does not have: "
                           "give target_concurrency instead")
    capacity = min(max_concurrent_per_instance, KNATIVE_CONCURRENCY_TARGET)
    return max(1, min(100, round(100 * target / capacity)))


def autoscaler(name: str, namespace: str, object_labels: dict[str, str], autoscale: dict[str, Any],
               max_concurrent_per_instance: int) -> Object:
    """An autoscaling/v2 HPA of the Deployment `name`: min/max from the spec (0 is refused when validating), CPU
    utilisation as the stand-in for concurrency, and the scale delays as stabilisation windows (a change is made
    only once every recommendation over the window agrees)."""
    spec = Autoscale.model_validate(autoscale)
    return k8s_object("autoscaling/v2", "HorizontalPodAutoscaler", metadata(name, namespace, object_labels), spec={
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": max(1, spec.min_instances),
        "maxReplicas": spec.max_instances,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": cpu_utilisation(spec, max_concurrent_per_instance)}}}],
        "behavior": {"scaleUp": {"stabilizationWindowSeconds": round(spec.scale_up_delay)},
                     "scaleDown": {"stabilizationWindowSeconds": round(spec.scale_down_delay)}},
    })


def replica_policy(name: str, namespace: str, object_labels: dict[str, str], selector: dict[str, str],
                   gateway: dict[str, str], port: int) -> Object:
    """Replicas take connections from their endpoint's gateway pods alone, on the serving port (the kubelet's
    probes come from the node, which NetworkPolicies leave alone). Egress is left open: replicas fetch their model
    from the tracking server, which may be outside the cluster."""
    return k8s_object("networking.k8s.io/v1", "NetworkPolicy", metadata(name, namespace, object_labels), spec={
        "podSelector": {"matchLabels": dict(selector)},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": dict(gateway)}}],
                     "ports": [{"protocol": "TCP", "port": port}]}],
    })


def gateway_policy(name: str, namespace: str, object_labels: dict[str, str], selector: dict[str, str],
                   port: int) -> Object:
    """The gateway is the endpoint's front door: its port is open to any source, inside the namespace or out of
    it (other namespaces, an ingress controller, a load balancer), and nothing else of its pods is."""
    return k8s_object("networking.k8s.io/v1", "NetworkPolicy", metadata(name, namespace, object_labels), spec={
        "podSelector": {"matchLabels": dict(selector)},
        "policyTypes": ["Ingress"],
        "ingress": [{"ports": [{"protocol": "TCP", "port": port}]}],
    })

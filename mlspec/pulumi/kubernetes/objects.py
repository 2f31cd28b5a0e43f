"""Compiled Kubernetes objects as pulumi-kubernetes resources: typed per kind, images in place, ordered."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

IMAGE_PLACEHOLDER = "mlspec-image:"  # as the compiler writes them (mlspec.backends.pulumi.kubernetes.context)
DEPENDS_ON = "mlspec.io/depends-on"  # annotation: "Kind/name, Kind/name": created (and ready) before this object

# Typed resources, so a preview shows each object's kind and pulumi-kubernetes awaits each the way it knows
# (Deployments until rolled out, Jobs until complete); a kind not listed becomes a CustomResource.
KINDS: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ResourceQuota"): k8s.core.v1.ResourceQuota,
    ("v1", "LimitRange"): k8s.core.v1.LimitRange,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Service"): k8s.core.v1.Service,
    ("v1", "PersistentVolumeClaim"): k8s.core.v1.PersistentVolumeClaim,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("apps/v1", "StatefulSet"): k8s.apps.v1.StatefulSet,
    ("batch/v1", "Job"): k8s.batch.v1.Job,
    ("batch/v1", "CronJob"): k8s.batch.v1.CronJob,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): k8s.autoscaling.v2.HorizontalPodAutoscaler,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("scheduling.k8s.io/v1", "PriorityClass"): k8s.scheduling.v1.PriorityClass,
}


def with_images(value: Any, images: Mapping[str, pulumi.Input[str]]) -> Any:
    """`value` with every `mlspec-image:KEY` string replaced by that image's reference."""
    if isinstance(value, str) and value.startswith(IMAGE_PLACEHOLDER):
        key = value[len(IMAGE_PLACEHOLDER):]
        if key not in images:
            raise ValueError(f"an object runs image '{key}', which the program does not build; recompile")
        return images[key]
    if isinstance(value, dict):
        return {k: with_images(v, images) for k, v in value.items()}
    if isinstance(value, list):
        return [with_images(v, images) for v in value]
    return value


KUBE_CONTEXT = "mlspec.io/kube-context"  # as the compiler writes it (mlspec.backends.pulumi.kubernetes.attached)


def kube_context(obj: Mapping[str, Any]) -> str | None:
    """The attached context an object goes to; None: the stack's cluster."""
    context: str | None = ((obj.get("metadata") or {}).get("annotations") or {}).get(KUBE_CONTEXT)
    return context


def key(obj: Mapping[str, Any]) -> str:
    """`Kind/name`, as depends-on annotations name objects, then `@context` for an attached cluster's."""
    context = kube_context(obj)
    return f"{obj['kind']}/{obj['metadata']['name']}" + (f"@{context}" if context else "")


def resource_name(obj: Mapping[str, Any]) -> str:
    """The Pulumi name of an object: kind and name, unique in a cluster's workspace; an attached cluster's
    objects are prefixed by their context (its namespace may bear the stack's namespace's name)."""
    context = kube_context(obj)
    return (f"{context}/" if context else "") + f"{obj['kind'].lower()}-{obj['metadata']['name']}"


def dependencies(obj: Mapping[str, Any]) -> list[str]:
    """The `Kind/name` references an object's depends-on annotation lists."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(DEPENDS_ON, "")
    return [part.strip() for part in text.split(",") if part.strip()]


def create(obj: Mapping[str, Any], images: Mapping[str, pulumi.Input[str]], depends_on: Sequence[pulumi.Resource],
           parent: pulumi.Resource, provider: pulumi.ProviderResource | None = None) -> pulumi.CustomResource:
    """One object as a resource, a child of `parent`, after `depends_on`, through `provider` (None: the
    parent's)."""
    body = with_images({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}, images)
    opts = pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on), provider=provider)
    typed = KINDS.get((obj["apiVersion"], obj["kind"]))
    if typed is None:
        return k8s.apiextensions.CustomResource(resource_name(obj), api_version=obj["apiVersion"], kind=obj["kind"],
                                                opts=opts, **body)
    resource: pulumi.CustomResource = typed(resource_name(obj), opts=opts, **{_snake(k): v for k, v in body.items()})
    return resource


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()

"""Attached Kubernetes contexts: the objects of resources on an attached compute go to that context's cluster,
marked with the context so the program creates them through its provider and the manifests file them apart."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from mlspec.backends.pulumi.kubernetes.context import Context
from mlspec.backends.pulumi.kubernetes.meta import Object
from mlspec.backends.pulumi.model import CompileError, ComputeModel, EndpointModel

KUBE_CONTEXT = "mlspec.io/kube-context"  # annotation: the kubeconfig context whose cluster the object goes to


def attached_contexts(ctx: Context, computes: Iterable[ComputeModel]) -> dict[str, Context]:
    """Per attached Kubernetes compute (by name), the context its resources' objects are built in: its own
    cluster, in its namespace (the workspace's when it names none), using the spec's tracking server."""
    found = {}
    for compute in computes:
        if compute.type != "attached" or not compute.kube_context:
            continue
        if ctx.own_tracking:  # the spec's checks refuse this at the compute's line; a model built otherwise too
            raise CompileError(f"compute '{compute.name}' is the attached context '{compute.kube_context}', another "
                               "cluster, whose pods cannot reach the workspace's in-cluster MLflow: set the "
                               "workspace's tracking.uri to a server reachable from both clusters")
        found[compute.name] = dataclasses.replace(ctx, namespace=compute.namespace or ctx.namespace,
                                                  kube_context=compute.kube_context)
    return found


def endpoint_context(endpoint: EndpointModel, ctx: Context, attached: dict[str, Context]) -> Context:
    """The context of an online endpoint: its deployments' attached cluster when they name one; the gateway
    routes to its replicas by Service name, so every deployment of an endpoint must be on the same cluster."""
    chosen = {attached[d.compute].kube_context if d.compute in attached else None: d.compute
              for d in endpoint.deployments}
    if not chosen:
        return ctx
    if len(chosen) > 1:
        raise CompileError(f"endpoint '{endpoint.name}': its deployments run on different clusters "
                           f"({', '.join(sorted(str(c) for c in chosen.values()))}); its gateway reaches replicas "
                           "in its own cluster only: put every deployment on computes of one cluster")
    (compute,) = chosen.values()
    return attached.get(compute or "", ctx)


def mark(objects: list[Object], ctx: Context) -> list[Object]:
    """`objects` annotated with their cluster's context (none for the stack's cluster)."""
    if ctx.kube_context is None:
        return objects
    for obj in objects:
        meta = obj["metadata"]
        meta["annotations"] = dict(sorted({**meta.get("annotations", {}), KUBE_CONTEXT: ctx.kube_context}.items()))
    return objects


def context_of_object(obj: Object) -> str | None:
    """The kubeconfig context an object goes to; None: the stack's cluster."""
    context: str | None = (obj["metadata"].get("annotations") or {}).get(KUBE_CONTEXT)
    return context


def endpoint_contexts(endpoints: Iterable[EndpointModel], computes: Iterable[ComputeModel],
                      ctx: Context) -> dict[str, Context]:
    """Each online endpoint's context (by name): where its objects and the Secrets they read are."""
    attached = attached_contexts(ctx, computes)
    return {endpoint.name: endpoint_context(endpoint, ctx, attached) for endpoint in endpoints}

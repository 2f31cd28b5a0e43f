"""The workspace's namespace (Pod Security "restricted") and its NetworkPolicies: deny all ingress, then allow
only what the workspace's own pods need."""

from __future__ import annotations

from mlspec.backends.pulumi.kubernetes.context import Context
from mlspec.backends.pulumi.kubernetes.meta import Object, k8s_object, labels, metadata

POD_SECURITY_LEVEL = "restricted"


def namespace(ctx: Context, tags: dict[str, str], description: str) -> Object:
    """The namespace, labelled so the API server enforces (and audits, and warns about) Pod Security
    "restricted" for every pod in it, whoever creates the pod."""
    own = labels(ctx.workspace, "workspace", ctx.workspace, tags=tags)
    for mode in ("enforce", "audit", "warn"):
        own[f"pod-security.kubernetes.io/{mode}"] = POD_SECURITY_LEVEL
        own[f"pod-security.kubernetes.io/{mode}-version"] = "latest"
    return k8s_object("v1", "Namespace", metadata(ctx.namespace, None, own, {"mlspec.io/description": description}))


def deny_ingress(ctx: Context, tags: dict[str, str]) -> Object:
    """No pod of the workspace takes a connection unless a policy below allows it."""
    return k8s_object("networking.k8s.io/v1", "NetworkPolicy",
                      metadata("default-deny-ingress", ctx.namespace,
                               labels(ctx.workspace, "workspace", ctx.workspace, tags=tags)),
                      spec={"podSelector": {}, "policyTypes": ["Ingress"]})


def allow_from_workspace(ctx: Context, name: str, component: str, pods: dict[str, str], port: int,
                         tags: dict[str, str] | None = None) -> Object:
    """The pods selected by `pods` take connections on `port` from any pod of the workspace's namespace."""
    return k8s_object("networking.k8s.io/v1", "NetworkPolicy",
                      metadata(f"allow-{name}", ctx.namespace, labels(ctx.workspace, component, name, tags=tags)),
                      spec={"podSelector": {"matchLabels": dict(pods)}, "policyTypes": ["Ingress"],
                            "ingress": [{"from": [{"podSelector": {}}],
                                         "ports": [{"protocol": "TCP", "port": port}]}]})


def allow_among(ctx: Context, name: str, component: str, pods: dict[str, str],
                tags: dict[str, str] | None = None) -> Object:
    """The pods selected by `pods` reach each other on any port (a distributed job's rendezvous and collectives,
    whose ports NCCL and Gloo choose at run time)."""
    return k8s_object("networking.k8s.io/v1", "NetworkPolicy",
                      metadata(f"allow-{name}", ctx.namespace, labels(ctx.workspace, component, name, tags=tags)),
                      spec={"podSelector": {"matchLabels": dict(pods)}, "policyTypes": ["Ingress"],
                            "ingress": [{"from": [{"podSelector": {"matchLabels": dict(pods)}}]}]})

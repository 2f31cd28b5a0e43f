"""Attached Docker hosts on the docker target: what cannot work there is refused at its line."""

from __future__ import annotations

from mlspec.diagnostics import Diagnostics
from mlspec.resolve.spec import ResolvedSpec
from mlspec.spec import BatchEndpoint, OnlineEndpoint
from mlspec.spec.compute import AttachedCompute
from mlspec.spec.stacks import DOCKER_HOST_SCHEMES
from mlspec.validate import Declared


def _attached_host(spec: ResolvedSpec, source: str, path: str) -> str | None:
    target = spec.target(source, path)
    compute = spec.get(target) if target else None
    return compute.host if isinstance(compute, AttachedCompute) else None


def check_docker_hosts(declared: list[Declared], spec: ResolvedSpec, diagnostics: Diagnostics) -> None:
    """A host must be a Docker host address; anything on one needs the workspace's tracking.uri (its own MLflow
    server stays on the stack's host, out of the other host's reach); an online endpoint's deployments share one
    host (its gateway reaches its replicas there by name); batch endpoints do not run on attached hosts yet."""
    for item in declared:
        resource = item.resource
        if isinstance(resource, AttachedCompute) and resource.host:
            _check_host(item, resource, spec, diagnostics)
        elif isinstance(resource, OnlineEndpoint):
            hosts = {name: _attached_host(spec, item.id, f"deployments.{name}.compute")
                     for name in resource.deployments}
            if len(set(hosts.values())) > 1:
                name = next(n for n, h in hosts.items() if h != hosts[next(iter(hosts))])
                path: tuple[str, ...] = ("deployments", name, "compute")
                if not resource.deployments[name].compute:
                    path = path[:2]
                diagnostics.error(
                    f"endpoint '{resource.name}': its deployments run on different Docker hosts "
                    f"({', '.join(sorted(h or 'the stack host' for h in set(hosts.values())))})",
                    item.doc.key_span(path), ".".join(path), "its gateway reaches replicas on its own host only: "
                    "put every deployment on computes of one host")
        elif isinstance(resource, BatchEndpoint) and _attached_host(spec, item.id, "compute"):
            diagnostics.error(
                f"batch endpoint '{resource.name}': compute '{resource.compute}' is an attached Docker host, where "
                "batch endpoints do not run yet on the docker target", item.doc.key_span(("compute",)), "compute",
                "score on a compute of the stack's host")


def _check_host(item: Declared, compute: AttachedCompute, spec: ResolvedSpec, diagnostics: Diagnostics) -> None:
    host = compute.host or ""
    scheme, _, rest = host.partition("://")
    if scheme not in DOCKER_HOST_SCHEMES or not rest:
        diagnostics.error(f"compute '{compute.name}': '{host}' is not a Docker host", item.doc.span(("host",)),
                          "host", "write ssh://user@host[:port], tcp://host:2376 or unix:///var/run/docker.sock")
    elif spec.workspace.tracking.uri is None:
        diagnostics.error(
            f"compute '{compute.name}': Docker host {host} is another host, whose containers cannot reach the "
            "workspace's own MLflow (a container on the stack's host, published nowhere)",
            item.doc.span(("host",)), "host",
            "set the workspace's tracking.uri to an MLflow server both hosts reach, or use a compute of the "
            "stack's host")

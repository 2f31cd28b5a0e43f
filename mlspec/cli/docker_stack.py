"""Where a docker stack's containers are and how the host reaches them: the Docker host (the stack's `docker.host`,
else DOCKER_HOST), the workspace's containers by their `mlspec.*` labels, and the published addresses the spec and
the stack decide (the gateways' and MLflow's ports on the publish address)."""

from __future__ import annotations

import argparse
import os
import urllib.parse
from dataclasses import dataclass
from typing import Any

from mlspec.cli.common import CommandError, load_spec
from mlspec.cli.output import EXIT_FAILED, EXIT_INVALID
from mlspec.cli.stacks import selection_of

DEFAULT_PUBLISH_ADDRESS = "127.0.0.1"  # mlspec:publishAddress when the stack sets none
ANY_ADDRESS = ("0.0.0.0", "::", "")  # published on every interface: reached through the host's own name


@dataclass(frozen=True)
class DockerStack:
    """A docker stack as the operation commands see it."""

    graph: Any
    workspace: str  # the `mlspec.workspace` label of everything it created
    host: str | None  # the Docker host; None: DOCKER_HOST or the local daemon
    publish_address: str

    @property
    def address(self) -> str:
        """The address a client on this machine sends to for a published port."""
        if self.publish_address not in ANY_ADDRESS:
            return self.publish_address
        remote = urllib.parse.urlsplit(self.host or os.environ.get("DOCKER_HOST", ""))
        return remote.hostname if remote.scheme in ("ssh", "tcp") and remote.hostname else DEFAULT_PUBLISH_ADDRESS

    def url(self, port: int) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{port}"

    def endpoint_url(self, name: str) -> str:
        from mlspec.backends.pulumi.model import stable_port

        endpoint = self.graph.nodes[f"endpoint/{name}"].resource
        return self.url(endpoint.port or stable_port(f"{self.workspace}/{name}"))

    @property
    def tracking_url(self) -> str:
        from mlspec.backends.pulumi.model import tracking_port

        return self.url(tracking_port(self.workspace))

    def client(self) -> Any:
        """A Docker API client for the stack's host; a CommandError (exit 1) when none answers."""
        import docker
        import docker.errors

        where = self.host or os.environ.get("DOCKER_HOST") or "the local Docker daemon"
        try:
            # ssh:// through the `ssh` command, as the docker CLI does (its keys and config, no paramiko).
            client = (docker.DockerClient(base_url=self.host, version="auto", timeout=60,
                                          use_ssh_client=self.host.startswith("ssh://")) if self.host
                      else docker.from_env(version="auto", timeout=60))
            client.ping()
        except (docker.errors.DockerException, OSError) as error:
            raise CommandError(f"the stack's Docker host ({where}) does not answer: {error}", EXIT_FAILED) from None
        return client

    def containers(self, client: Any, resource: str | None = None) -> list[Any]:
        """The workspace's containers (of one resource, `kind/name`, if given), running or not, by name."""
        wanted = [f"mlspec.workspace={self.workspace}", *([f"mlspec.resource={resource}"] if resource else [])]
        found = client.containers.list(all=True, filters={"label": wanted})
        return sorted(found, key=lambda c: c.name)

    def short_name(self, container: Any) -> str:
        """A container's name without the workspace's prefix: `mlflow`, `iris-gateway`, `iris-blue-0`."""
        name: str = container.name
        return name.removeprefix(f"{self.workspace}-")


def docker_stack(args: argparse.Namespace) -> DockerStack:
    graph = load_spec(args, check_target=False)
    settings = selection_of(args).docker
    return DockerStack(graph, graph.spec.workspace.name, settings.host if settings else None,
                       (settings.publish_address if settings else None) or DEFAULT_PUBLISH_ADDRESS)


def node(stack: DockerStack, kind: str, name: str, what: str) -> Any:
    """The spec's resource `kind/name`, or a CommandError naming what the command wanted."""
    found = stack.graph.nodes.get(f"{kind}/{name}")
    if found is None:
        raise CommandError(f"'{name}' is not {what} of the spec", EXIT_INVALID)
    return found.resource

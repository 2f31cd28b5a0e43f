"""`AttachedHost`: a Docker host that attached computes name, with its own provider, network and images."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pulumi
import pulumi_docker as docker

from mlspec.pulumi import containers as c
from mlspec.pulumi.environment import Environment

if TYPE_CHECKING:
    from mlspec.pulumi.workspace import Workspace

UNSPECIFIED = ("0.0.0.0", "::")  # a publish address that means "every address of the host"


def host_slug(host: str) -> str:
    """A name part for `host` made of its user, address and port (``ssh://ml@10.0.0.5:2222`` ->
    ``ml-10-0-0-5-2222``): it names the host's provider and network, so they stay the same between updates
    whatever the computes that name the host are called."""
    parts = urlsplit(host)
    where = parts.netloc or parts.path
    slug = re.sub(r"[^a-z0-9]+", "-", where.lower()).strip("-")
    return slug or "host"


def host_address(host: str) -> str:
    """The address of an ``ssh://`` or ``tcp://`` host, as a client elsewhere reaches it ('' for a socket)."""
    return urlsplit(host).hostname or ""


class AttachedHost(pulumi.ComponentResource):
    """Everything that runs on one attached Docker host goes through its explicit ``docker.Provider``
    (``pulumi:providers:docker`` named ``docker-host-<host>``; ``ssh://`` hosts are reached with the stack's
    ``mlspec:sshOpts``, else with the SSH client's own configuration).

    What the workspace gives a resource on the stack's host is made again on this one, since Docker objects do not
    span hosts: a network ``<workspace>-<host>`` where its jobs and endpoints' gateways find each other (an
    endpoint's replicas also get their internal network there), and the images they run: the runtime image and
    each environment image used there, built on this host from the same staged contexts, so their tags are the
    same as on the stack's host. The workspace's volume and its MLflow server stay on the stack's host, where
    nothing on this one can reach them: resources here log to the workspace's ``tracking_uri`` (the team's MLflow
    server, which both hosts must reach), and a spec that puts anything here without one is refused at the
    compute's ``host``. No volume is created here: jobs and replicas keep nothing on a volume.
    """

    def __init__(self, workspace: Workspace, host: str) -> None:
        self.host, self.slug, self.workspace = host, host_slug(host), workspace
        super().__init__("mlspec:docker:AttachedHost", self.slug, None, pulumi.ResourceOptions(parent=workspace))
        if not workspace.args.tracking_uri:
            raise ValueError(f"Docker host {host} is attached, but the workspace runs its own MLflow server on the "
                             "stack's host, out of that host's reach: set the workspace's tracking.uri")
        self.provider = workspace.settings.provider_for(f"docker-host-{self.slug}", host,
                                                        pulumi.ResourceOptions(parent=self))
        tagged = {**c.tag_labels(workspace.args.tags), "mlspec.workspace": workspace.name,
                  "mlspec.host": self.slug}
        self.network = docker.Network(
            f"{workspace.name}-{self.slug}", name=f"{workspace.name}-{self.slug}",
            labels=[docker.NetworkLabelArgs(label=k, value=v) for k, v in sorted(tagged.items())],
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, ignore_changes=["labels"]))
        self.network_name: pulumi.Output[str] = self.network.name
        self._environments: dict[str, Environment] = {}
        self.register_outputs({"network": self.network.name})

    def options(self, opts: pulumi.ResourceOptions | None = None) -> pulumi.ResourceOptions:
        """`opts` with this host's provider, for a component whose resources all run here."""
        return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[self.provider]))

    @property
    def runtime(self) -> Environment:
        """The workspace's runtime image, built on this host (the gateway's, and the base of environments built
        on it), once, when something here first needs it."""
        return self.environment(self.workspace.runtime)

    def environment(self, environment: Environment) -> Environment:
        """`environment`'s image on this host: built here once, whoever asks."""
        if environment.name not in self._environments:
            self._environments[environment.name] = Environment(
                environment.name, self.workspace, environment.args, opts=pulumi.ResourceOptions(parent=self),
                host=self)
        return self._environments[environment.name]

    def url_address(self, publish_address: str) -> str:
        """The address in the URL of a port published here: the host's own address when the port is published on
        all of its addresses; else the publish address, as seen from the host itself."""
        if publish_address in UNSPECIFIED:
            return host_address(self.host) or publish_address
        return publish_address

"""`Workspace`: the network, the storage volume and the MLflow tracking server every other resource uses."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from mlspec.pulumi import containers as c
from mlspec.pulumi.environment import Environment, EnvironmentArgs
from mlspec.pulumi.hosts import AttachedHost
from mlspec.pulumi.settings import Settings
from mlspec.pulumi.tracking_access import PublishedTracking
from mlspec.runtime import servers

MLFLOW_ALIAS = "mlflow"  # the tracking server's name on the workspace network
MLFLOW_PORT = servers.MLFLOW_PORT
TRACKING_SIZE = c.Size(cpus=1.0, memory_mb=2048)  # the tracking server's limits (the Kubernetes target's too)


@dataclass(frozen=True)
class WorkspaceArgs:
    """The workspace's shared infrastructure.

    :param spec_root: the folder of the spec, relative to the project folder (code and data are read from it).
    :param runtime: the mlspec runtime image (gateway, labeller, and the base of environments without a base image
        of their own), built like an environment; it holds MLflow's client only.
    :param tracking: the tracking server's image, built on the runtime with the whole of MLflow; required unless
        ``tracking_uri`` names a server.
    :param volume: name of the Docker volume holding the tracking store, artifacts and notebooks
        (default ``<workspace>-storage``).
    :param tracking_uri: an existing MLflow tracking server that jobs, replicas and notebooks use instead of one
        the workspace runs; it must be reachable from the containers (and serve artifacts itself). Needed when
        anything runs on an attached host (see `AttachedHost`).
    :param tracking_port: the host port the workspace's own MLflow is published on (on the stack's
        ``mlspec:publishAddress``), behind HTTP basic authentication with a generated password; None: not published.
    :param tags: the workspace's tags, as ``mlspec.tag.KEY`` labels of its network, volume and tracking server.
        Docker cannot relabel a network or a volume, and recreating the volume would lose the tracking store, so
        theirs are the tags when they were created; the tracking server's container is recreated with new ones.
    """

    spec_root: str
    runtime: EnvironmentArgs
    tracking: EnvironmentArgs | None = None
    volume: str | None = None
    tracking_uri: str | None = None
    tracking_port: int | None = None
    tags: dict[str, str] = field(default_factory=dict)


class Workspace(pulumi.ComponentResource):
    """A network, a volume and an MLflow tracking server (sqlite store and proxied artifacts on the volume),
    started with a healthcheck and waited on until healthy, so jobs can log to it at once; or, with
    ``tracking_uri``, the team's own server and no container of its own."""

    tracking_uri: str
    network_name: pulumi.Output[str]
    model_network_name: pulumi.Output[str]  # where endpoint replicas reach the tracking server for their model
    tracking: list[pulumi.Resource]  # what must be up before anything logs to the tracking server
    published: PublishedTracking | None  # the server as the host reaches it, with its credentials

    def __init__(self, name: str, args: WorkspaceArgs, settings: Settings | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        self.name, self.args = name, args
        self.settings = settings or Settings.from_config()
        self.provider = self.settings.provider()
        super().__init__("mlspec:docker:Workspace", name, None, self.options(opts))
        child = pulumi.ResourceOptions(parent=self)
        tagged = {**c.tag_labels(args.tags), "mlspec.workspace": name}
        # Labels fixed at creation (see WorkspaceArgs.tags): a tag change must not replace the store.
        created = pulumi.ResourceOptions(parent=self, ignore_changes=["labels"])
        self.network = docker.Network(
            name, name=name, labels=[docker.NetworkLabelArgs(label=k, value=v) for k, v in sorted(tagged.items())],
            opts=created)
        self.volume = docker.Volume(
            f"{name}-storage", name=args.volume or f"{name}-storage",
            labels=[docker.VolumeLabelArgs(label=k, value=v) for k, v in sorted(tagged.items())], opts=created)
        self._runtime: Environment | None = None
        self.hosts: dict[str, AttachedHost] = {}
        self.network_name = self.network.name
        if args.tracking_uri:
            # The team's server is outside the host: replicas need the workspace network's way out to reach it.
            self.tracking_uri, self.tracking, self.model_network_name = args.tracking_uri, [], self.network.name
        else:
            # Replicas fetch their model on a network of their own with the tracking server alone: internal (no
            # way out), and without the jobs, notebooks and gateways of the workspace network.
            self.model_network = docker.Network(
                f"{name}-models", name=f"{name}-models", internal=True,
                labels=[docker.NetworkLabelArgs(label=k, value=v) for k, v in sorted(tagged.items())], opts=created)
            self.model_network_name = self.model_network.name
            if args.tracking is None:
                raise ValueError(f"workspace '{name}': a tracking server of its own needs WorkspaceArgs.tracking")
            self.tracking_image = Environment("tracking", self, args.tracking, opts=child)
            self.mlflow = self._tracking_server(name, child)
            self.tracking_uri, self.tracking = f"http://{MLFLOW_ALIAS}:{MLFLOW_PORT}", [self.mlflow]
        self.published = None
        if args.tracking_port and not args.tracking_uri:
            self.published = PublishedTracking(self, self.tracking_uri, args.tracking_port, self.tracking)
        self.register_outputs({"tracking_uri": self.tracking_uri, "network": self.network.name,
                               "volume": self.volume.name})

    @property
    def runtime(self) -> Environment:
        """mlspec's runtime image on the stack's host (MLflow server, gateways, the base of most environments),
        built once, when something there first needs it."""
        if self._runtime is None:
            self._runtime = Environment("runtime", self, self.args.runtime, opts=pulumi.ResourceOptions(parent=self),
                                        attached_only=True)  # built where a container or an image needs it
        return self._runtime

    def attached(self, host: str | None) -> AttachedHost | None:
        """The attached Docker host `host` (one per distinct host, made when first named); None: the stack's."""
        if host is None:
            return None
        if host not in self.hosts:
            self.hosts[host] = AttachedHost(self, host)
        return self.hosts[host]

    def options(self, opts: pulumi.ResourceOptions | None = None,
                host: AttachedHost | None = None) -> pulumi.ResourceOptions | None:
        """`opts` plus the Docker provider of where a component runs: `host`, or the stack's host."""
        if host is not None:
            return host.options(opts)
        if self.provider is None:
            return opts
        return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[self.provider]))

    def network_on(self, host: AttachedHost | None) -> pulumi.Output[str]:
        """The workspace network as it exists on `host` (None: the stack's host)."""
        return self.network_name if host is None else host.network_name

    def model_network_on(self, host: AttachedHost | None) -> pulumi.Output[str]:
        """Where replicas on `host` fetch their model: the internal model network on the stack's host; the
        workspace network on an attached one (whose tracking server, `tracking_uri`, is outside)."""
        return self.model_network_name if host is None else host.network_name

    def runtime_on(self, host: AttachedHost | None) -> Environment:
        """The runtime image on `host` (None: the stack's host)."""
        return self.runtime if host is None else host.runtime

    def environment_on(self, environment: Environment, host: AttachedHost | None) -> Environment:
        """`environment`'s image on `host` (None: the stack's host, where it is `environment` itself)."""
        return environment if host is None else host.environment(environment)

    def _tracking_server(self, name: str, child: pulumi.ResourceOptions) -> docker.Container:
        """MLflow on the volume, with proxied artifacts, waited on until healthy."""
        host = f"{name}-mlflow"
        allowed = [f"{MLFLOW_ALIAS}:{MLFLOW_PORT}", MLFLOW_ALIAS, f"{host}:{MLFLOW_PORT}", host,
                   f"localhost:{MLFLOW_PORT}", "localhost", f"127.0.0.1:{MLFLOW_PORT}", "127.0.0.1"]
        store = f"{c.STORAGE}/tracking"
        # Its first answers are slow (MLflow imports on first use): a probe waits up to 10 s on a busy host.
        health = c.Health(interval=2, timeout=10, retries=60, start_period=5)
        return docker.Container(
            f"{name}-mlflow",
            name=host,
            image=self.tracking_image.image_name,
            # As many workers as its CPU limit allows: one, so none is a supervised child that a starved quota
            # could make miss its heartbeat.
            command=servers.mlflow_server(store, allowed, workers=max(1, int(TRACKING_SIZE.cpus))),
            user=c.USER,
            networks_advanced=[*c.network(self.network.name, MLFLOW_ALIAS),
                               *c.network(self.model_network.name, MLFLOW_ALIAS)],
            volumes=c.storage(self.volume.name),
            healthcheck=health.check(MLFLOW_PORT, "/health"),
            restart="unless-stopped",
            wait=True,
            wait_timeout=health.wait_timeout,
            labels=c.labels(name, "workspace/" + name, {"mlspec.role": "tracking"}, self.args.tags),
            **c.hardened(TRACKING_SIZE),
            opts=child,
        )

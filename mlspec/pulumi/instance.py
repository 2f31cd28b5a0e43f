"""`ComputeInstance`: a JupyterLab container whose notebooks live on the workspace volume."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from mlspec.pulumi import containers as c
from mlspec.pulumi.environment import Environment
from mlspec.pulumi.workspace import Workspace
from mlspec.runtime import servers

JUPYTER_PORT = servers.JUPYTER_PORT
HEALTH = c.Health(interval=2, timeout=2, retries=60)


@dataclass(frozen=True)
class ComputeInstanceArgs:
    """A development box.

    :param environment: the Environment the notebook kernel runs in (it includes JupyterLab).
    :param port: the host port JupyterLab is published on (on the stack's ``mlspec:publishAddress``).
    :param size: CPU, memory and GPUs of the container.
    :param idle_shutdown: seconds without a kernel message, terminal or API request after which JupyterLab exits
        and its container stays stopped (restart on failure only) until `mlspec compute start` or the next update
        (which recreates a stopped container); a busy kernel keeps it up. None: it runs until stopped.
    :param tags: the compute's tags, as ``mlspec.tag.KEY`` labels of its container (recreated when they change:
        Docker cannot relabel a container; the notebooks stay on the volume).
    """

    environment: Environment
    port: int
    size: c.Size = field(default_factory=c.Size)
    idle_shutdown: float | None = None
    tags: dict[str, str] = field(default_factory=dict)


class ComputeInstance(pulumi.ComponentResource):
    """JupyterLab behind a generated password (a secret output; the container holds only its salted hash),
    with ``notebooks/<name>`` on the workspace volume as its root, so replacing the container loses nothing."""

    url: pulumi.Output[str]
    password: pulumi.Output[str]

    def __init__(self, name: str, workspace: Workspace, args: ComputeInstanceArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlspec:docker:ComputeInstance", name, None, workspace.options(opts))
        child = pulumi.ResourceOptions(parent=self)
        secret = random.RandomPassword(f"{name}-password", length=32, special=False, opts=child)
        hashed = secret.result.apply(lambda p: servers.jupyter_password_hash(p, workspace.name, name))
        notebooks = f"{c.STORAGE}/notebooks/{name}"
        publish = workspace.settings.publish_address
        self.container = docker.Container(
            name,
            name=f"{workspace.name}-{name}",
            image=args.environment.image_name,
            command=hashed.apply(lambda h: servers.jupyter_lab(notebooks, h, idle_shutdown=args.idle_shutdown)),
            user=c.USER,
            envs=c.envs(args.environment.env),
            ports=[docker.ContainerPortArgs(internal=JUPYTER_PORT, external=args.port, ip=publish)],
            volumes=c.storage(workspace.volume.name),
            networks_advanced=c.network(workspace.network_name, name),
            healthcheck=HEALTH.check(JUPYTER_PORT, "/api"),
            # An idle shutdown exits 0: only a crash brings it back by itself.
            restart="unless-stopped" if args.idle_shutdown is None else "on-failure",
            wait=True,
            wait_timeout=HEALTH.wait_timeout,
            labels=c.labels(workspace.name, f"compute/{name}", {"mlspec.role": "notebooks"}, args.tags),
            **c.hardened(args.size),
            opts=pulumi.ResourceOptions(parent=self, depends_on=workspace.tracking),
        )
        self.url = pulumi.Output.from_input(f"http://{publish}:{args.port}/lab")
        self.password = pulumi.Output.secret(secret.result)
        self.register_outputs({"url": self.url, "password": self.password})

"""The workspace's MLflow published on the host, behind HTTP basic authentication (`mlspec.runtime.tracking_proxy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from mlspec.pulumi import containers as c
from mlspec.runtime.keys import key_hash

if TYPE_CHECKING:
    from mlspec.pulumi.workspace import Workspace

USER = "mlspec"  # the user name MLflow clients send (MLFLOW_TRACKING_USERNAME)
PROXY_PORT = 5001  # inside the proxy's container
HASH_ENV = "MLSPEC_TRACKING_PASSWORD_SHA256"
HEALTH = c.Health(interval=2, timeout=3, retries=30)
SIZE = c.Size(cpus=0.5, memory_mb=256)  # one event loop passing bytes through


class PublishedTracking:
    """A RandomPassword (a secret in the state) and a proxy container on the runtime image, published on the stack's
    publish address, that sends authenticated requests on to the tracking server over the workspace network. The
    container holds only the password's hash; the jobs and replicas keep talking to the server directly."""

    url: pulumi.Output[str]
    credentials: pulumi.Output[dict[str, str]]

    def __init__(self, workspace: Workspace, upstream: str, port: int, depends_on: list[pulumi.Resource]) -> None:
        name = workspace.name
        child = pulumi.ResourceOptions(parent=workspace)
        self.password = random.RandomPassword(f"{name}-tracking-password", length=43, special=False, opts=child)
        hashed: pulumi.Output[str] = pulumi.Output.secret(
            self.password.result.apply(lambda p: f"{HASH_ENV}={key_hash(p)}"))
        publish = workspace.settings.publish_address
        self.container = docker.Container(
            f"{name}-mlflow-proxy",
            name=f"{name}-mlflow-proxy",
            image=workspace.runtime.image_name,
            command=[c.PYTHON, "-m", "mlspec.runtime.tracking_proxy", "--upstream", upstream, "--host", "0.0.0.0",
                     "--port", str(PROXY_PORT), "--user", USER, "--password-hash-env", HASH_ENV],
            user=c.USER,
            envs=[hashed],
            ports=[docker.ContainerPortArgs(internal=PROXY_PORT, external=port, ip=publish)],
            networks_advanced=c.network(workspace.network_name),
            healthcheck=HEALTH.check(PROXY_PORT, "/health"),
            restart="unless-stopped",
            wait=True,
            wait_timeout=HEALTH.wait_timeout,
            labels=c.labels(name, "workspace/" + name, {"mlspec.role": "tracking-proxy"}, workspace.args.tags),
            **c.hardened(SIZE),
            opts=pulumi.ResourceOptions(parent=workspace, depends_on=depends_on),
        )
        self.url = pulumi.Output.from_input(f"http://{publish}:{port}")
        self.credentials = pulumi.Output.secret(
            self.password.result.apply(lambda p: {"username": USER, "password": p}))

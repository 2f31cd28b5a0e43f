"""An attached Docker host reached over SSH, on a real engine: a compute `host: ssh://root@127.0.0.1:PORT` names an
sshd container whose `docker` is the test engine's. Proves that the job on that compute and the endpoint serving its
model are built and run through SSH alone (`ssh ... docker system dial-stdio`, as pulumi-docker does), log to the
team's MLflow server named by tracking.uri, and answer: the model the job trained there is served there.

Cost: one runtime image and one sklearn environment built (through SSH) from the wheelhouse, about as long as the
iris test's own builds (a minute or two here), plus a few seconds for the sshd image (built once, then kept)."""

from __future__ import annotations

import ipaddress
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from mlspec.backends.pulumi import compile_project
from mlspec.graph import load_graph
from tests.docker.attached_spec import attached_spec
from tests.docker.engine import DockerEngine
from tests.docker.sshd import SshHost, sshd_image, start_ssh_host
from tests.docker.test_iris_docker_e2e import REQUEST, assert_runs_as_declared, post, report
from tests.mlflow_server import mlflow_server
from tests.pulumi.harness import run_program

CONTAINER = "docker:index/container:Container"
PASSWORD = "random:index/randomPassword:RandomPassword"

pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.timeout(1800)]


@pytest.fixture
def ssh_host(docker_client: docker.DockerClient, base_image: str, tmp_path: Path) -> Iterator[SshHost]:
    """The sshd container; asked for before the engine, so it outlives the engine's cleanup through it."""
    folder = tmp_path / "ssh"
    folder.mkdir()
    session = os.urandom(4).hex()
    host = start_ssh_host(docker_client, sshd_image(docker_client, base_image, folder), session, folder)
    try:
        yield host
    finally:
        docker_client.containers.get(host.container).remove(force=True)


def _bridge_address(client: docker.DockerClient) -> str:
    """The engine's own address on its default bridge (docker0). Some engines (Debian's 20.10) leave the gateway
    out of the network's IPAM config; the bridge then takes the subnet's first address, as Docker assigns it."""
    config = client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    return str(config.get("Gateway") or next(ipaddress.ip_network(config["Subnet"]).hosts()))


@pytest.fixture
def team_mlflow(docker_client: docker.DockerClient, tmp_path: Path) -> Iterator[str]:
    """The team's MLflow server, a process on this machine. It listens on the engine's bridge address (docker0),
    not 127.0.0.1, because containers must reach it, as the attached host's containers reach a team server; that
    address exists only on this machine and its containers."""
    with mlflow_server(tmp_path / "mlflow", host=_bridge_address(docker_client), start_s=90) as uri:
        yield uri


def test_a_job_and_an_endpoint_run_on_a_docker_host_reached_over_ssh(
        ssh_host: SshHost, docker_engine: DockerEngine, team_mlflow: str, base_image: str, wheelhouse: Path,
        tmp_path: Path, pytestconfig: pytest.Config) -> None:
    client = docker_engine.client
    started = time.monotonic()
    spec = attached_spec(tmp_path / "examples" / "edge", host=ssh_host.host, tracking_uri=team_mlflow)
    stack = tmp_path / "stacks" / "edge"
    compile_project(load_graph([spec]), stack)
    config = {"mlspec:baseImage": base_image, "mlspec:wheelhouse": str(wheelhouse),
              "mlspec:publishAddress": "127.0.0.1", "mlspec:sshOpts": json.dumps(ssh_host.ssh_opts)}
    captured = run_program(stack, config, mocks=docker_engine)
    provisioned_s = time.monotonic() - started
    assert not docker_engine.errors

    # Everything but the workspace's own network and volume went through SSH; nothing else touched the engine.
    (bridge,) = docker_engine.bridges.values()
    assert bridge.sessions > 0 and not bridge.errors, bridge.errors
    through_ssh = {c.name for c in docker_engine.created if c.host == ssh_host.host}
    direct = {c.name for c in docker_engine.created if c.host != ssh_host.host and not c.typ.startswith("random:")}
    assert direct == {"edge-demo", "edge-demo-storage"}, direct
    assert {"train", "iris-main-0", "iris-gateway", "sklearn-on-root-127-0-0-1-" + ssh_host.host.rsplit(":", 1)[1]} \
        <= through_ssh, through_ssh
    assert "Accepted publickey for root" in ssh_host.log(client)

    # The job trained there and registered its model in the team's server.
    job = captured.get(CONTAINER, "train")
    assert job.outputs["exitCode"] == 0, job.outputs.get("containerLogs")
    assert_runs_as_declared(client, job)
    with urllib.request.urlopen(f"{team_mlflow}/api/2.0/mlflow/registered-models/get?name=iris-edge") as answer:
        registered: dict[str, Any] = json.load(answer)["registered_model"]
    assert [v["version"] for v in registered["latest_versions"]] == ["1"]

    # The endpoint there serves that model through its gateway, with its key.
    gateway = captured.get(CONTAINER, "iris-gateway")
    for name in ("iris-gateway", "iris-main-0"):
        info = assert_runs_as_declared(client, captured.get(CONTAINER, name))
        assert info["State"]["Health"]["Status"] == "healthy", name
    port = gateway.inputs["ports"][0]
    key = next(r.outputs["result"] for r in captured.of_type(PASSWORD) if r.name.endswith("-primary-key"))
    status, body = post(f"http://{port['ip']}:{int(port['external'])}/invocations", REQUEST.read_bytes(),
                        {"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    assert status == 200 and json.loads(body)["predictions"] == [0, 2], body

    report(pytestconfig, [f"attached host over SSH: provisioned in {provisioned_s:.0f} s through {bridge.sessions} "
                          f"SSH sessions, test {time.monotonic() - started:.0f} s"])

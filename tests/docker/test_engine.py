"""The real-Docker engine behind Pulumi's mocks: a hand-written program is provisioned for real and then removed."""

from __future__ import annotations

import contextlib
import urllib.request
from pathlib import Path

import docker
import docker.errors
import pulumi
import pytest

from tests.docker.engine import LABEL, DockerEngine, EngineError
from tests.pulumi.harness import run_program

PROGRAM = Path(__file__).parent / "program"

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]  # the first test's setup may build the base image


def _inspect(client: docker.DockerClient, name: str) -> dict:
    return client.api.inspect_container(name)


def test_program_is_provisioned_with_exactly_its_inputs(docker_engine: DockerEngine, base_image: str) -> None:
    suffix = docker_engine.session
    captured = run_program(PROGRAM, {"mlspec:baseImage": base_image, "mlspec:suffix": suffix}, mocks=docker_engine)
    client = docker_engine.client

    # The run-to-completion container reached the server by its network alias, read the uploaded file,
    # wrote to the shared volume, and its non-zero exit came back as an output instead of failing the run.
    assert captured.exports["jobExitCode"] == 3
    assert captured.exports["jobLogs"].strip() == "uploaded before start"
    assert len(captured.exports["key"]) == 24 and captured.exports["key"].isalnum()

    image = client.images.get(f"engine-check-app:{suffix}")
    web = _inspect(client, f"engine-check-web-{suffix}")
    assert web["State"]["Running"] and web["State"]["Health"]["Status"] == "healthy"
    assert web["Image"] == image.id  # the program wired the container to the built image's digest
    assert web["Config"]["Cmd"] == ["python3", "-m", "http.server", "8000", "--directory", "/srv"]
    assert "GREETING=hello" in web["Config"]["Env"]
    assert web["Config"]["User"] == "10001"
    assert web["Config"]["Labels"]["role"] == "web" and web["Config"]["Labels"][LABEL] == suffix
    assert web["Config"]["Healthcheck"]["Interval"] == 1_000_000_000
    assert web["Config"]["Healthcheck"]["Retries"] == 30
    assert web["HostConfig"]["Memory"] == 256 * 1024 * 1024
    assert web["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert [(m["Type"], m["Name"], m["Destination"]) for m in web["Mounts"]] == [
        ("volume", f"engine-check-data-{suffix}", "/data")]
    network = web["NetworkSettings"]["Networks"][f"engine-check-{suffix}"]
    assert "web" in network["Aliases"]
    binding = web["NetworkSettings"]["Ports"]["8000/tcp"][0]
    assert binding["HostIp"] == "127.0.0.1"
    assert int(binding["HostPort"]) == captured.exports["webPort"]

    with urllib.request.urlopen(f"http://127.0.0.1:{captured.exports['webPort']}/hello.txt", timeout=10) as reply:
        assert reply.read() == b"uploaded before start\n"
    job = _inspect(client, f"engine-check-job-{suffix}")
    assert job["State"]["ExitCode"] == 3 and not job["State"]["Running"]

    # Every resource the engine made is recorded with its real id, and the cleanup removes all of it.
    made = {(c.typ.split(":")[-1], c.name) for c in docker_engine.created}
    assert made == {("Network", "net"), ("Volume", "data"), ("Image", "app"), ("Container", "web"),
                    ("Container", "job"), ("RandomPassword", "key")}
    assert not docker_engine.errors
    assert docker_engine.cleanup() == []
    selector = {"label": f"{LABEL}={suffix}"}
    assert client.containers.list(all=True, filters=selector) == []
    assert client.networks.list(filters=selector) == []
    assert client.volumes.list(filters=selector) == []
    if not docker_engine.keep_images:
        assert client.images.list(filters=selector) == []
        for step in docker_engine.build_steps:  # only tagged images (the base) outlive the session
            with contextlib.suppress(docker.errors.ImageNotFound):
                assert client.images.get(step).tags, step


def test_unknown_resource_types_fail_clearly(docker_engine: DockerEngine) -> None:
    args = pulumi.runtime.MockResourceArgs(typ="docker:index/service:Service", name="swarm", inputs={}, custom=True)
    with pytest.raises(EngineError, match=r"docker:index/service:Service 'swarm': .*not performed by the test engine"):
        docker_engine.new_resource(args)
    assert docker_engine.errors == [
        "docker:index/service:Service 'swarm': this resource type is not performed by the test engine"]


def test_a_missing_remote_image_names_the_way_out(docker_engine: DockerEngine) -> None:
    args = pulumi.runtime.MockResourceArgs(typ="docker:index/remoteImage:RemoteImage", name="base",
                                           inputs={"name": "no-such-image:never"}, custom=True)
    with pytest.raises(EngineError, match=r"not on the engine and no registry can be reached"):
        docker_engine.new_resource(args)


def test_a_container_that_dies_on_start_is_an_error(docker_engine: DockerEngine, base_image: str) -> None:
    args = pulumi.runtime.MockResourceArgs(
        typ="docker:index/container:Container", name="dies",
        inputs={"name": f"engine-check-dies-{docker_engine.session}", "image": base_image,
                "command": ["sh", "-c", "echo bad config >&2; exit 2"]}, custom=True)
    with pytest.raises(EngineError, match=r"exited right after start: last logs:\nbad config"):
        docker_engine.new_resource(args)
    # Even a failed container is the session's, so the cleanup removes it.
    assert docker_engine.client.containers.list(all=True, filters={"label": f"{LABEL}={docker_engine.session}"})


def test_a_provider_for_another_docker_host_is_refused_unless_reached_over_ssh(docker_engine: DockerEngine) -> None:
    same = pulumi.runtime.MockResourceArgs(typ="pulumi:providers:docker", name="here",
                                           inputs={"host": docker_engine.host}, custom=True)
    assert docker_engine.new_resource(same)[0] == "here-provider"
    other = pulumi.runtime.MockResourceArgs(typ="pulumi:providers:docker", name="vm",
                                            inputs={"host": "tcp://vm:2376"}, custom=True)
    with pytest.raises(EngineError, match="targets Docker host tcp://vm:2376"):
        docker_engine.new_resource(other)
    # An ssh:// host is reached through ssh itself, and one that does not answer says so.
    unreachable = pulumi.runtime.MockResourceArgs(
        typ="pulumi:providers:docker", name="gone", custom=True,
        inputs={"host": "ssh://user@127.0.0.1:1", "sshOpts": '["-F", "/dev/null", "-o", "ConnectTimeout=5"]'})
    with pytest.raises(EngineError, match=r"ssh://user@127.0.0.1:1 does not answer over SSH"):
        docker_engine.new_resource(unreachable)

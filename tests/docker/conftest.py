"""Fixtures for tests on a real Docker engine: the engine, the base image, the wheelhouse, the shared iris deployment,
and guaranteed cleanup.

Where no engine answers, a test that needs one fails when CI is set (a Docker test is never skipped silently
there) and is skipped with the reason otherwise; `scripts/test` starts an engine first (`scripts/docker-engine`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.docker.engine import DockerEngine
from tests.docker.iris_deployment import IrisDeployment, deploy_iris

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("MLSPEC_BASE_IMAGE", "mlspec-base:bookworm")
OWN_SOCKET = "unix:///run/mlspec-docker/docker.sock"  # where scripts/docker-engine starts dockerd


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so Docker tests must run: scripts/test starts an engine)", pytrace=False)
    pytest.skip(f"{reason}; run scripts/docker-engine, or deselect with -m 'not docker'")


def _connect() -> docker.DockerClient | None:
    hosts = [os.environ["DOCKER_HOST"]] if os.environ.get("DOCKER_HOST") else []
    hosts += [OWN_SOCKET, "unix:///var/run/docker.sock"]
    for host in hosts:
        try:
            client = docker.DockerClient(base_url=host, version="auto", timeout=600)
            client.ping()
        except (docker.errors.DockerException, OSError):
            continue
        os.environ["DOCKER_HOST"] = host  # the docker CLI and the SDK in every fixture talk to the same engine
        return client
    return None


def _script(name: str, *args: str) -> str:
    done = subprocess.run([str(ROOT / "scripts" / name), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=1800, check=False)
    if done.returncode != 0:
        pytest.fail(f"scripts/{name} failed ({done.returncode}):\n{done.stderr[-3000:]}", pytrace=False)
    return done.stdout.strip()


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = _connect()
    if client is None:
        _unavailable("no Docker engine answers")
    assert client is not None
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client: docker.DockerClient) -> str:
    """The local Debian image with python3 that images build on (no registry: it is made by debootstrap)."""
    try:
        docker_client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        _script("docker-base-image")
    return BASE_IMAGE


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """Wheels for mlspec and its dependencies, so images install offline; mlspec's own wheel is rebuilt."""
    return Path(_script("wheelhouse"))


@pytest.fixture
def docker_engine(docker_client: docker.DockerClient) -> Iterator[DockerEngine]:
    """A `Mocks` that provisions on the engine; everything it made is removed afterwards, even on failure."""
    engine = DockerEngine(client=docker_client, keep_images=bool(os.environ.get("MLSPEC_TEST_KEEP_IMAGES")))
    try:
        yield engine
    finally:
        problems = engine.cleanup()
        assert not problems, problems


@pytest.fixture(scope="session")
def iris_deployment(docker_client: docker.DockerClient, base_image: str, wheelhouse: Path,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisDeployment]:
    """The iris example deployed once for every Docker file that needs it live (see tests/docker/iris_deployment.py);
    removed with everything its engine made when the session ends."""
    engine = DockerEngine(client=docker_client, keep_images=bool(os.environ.get("MLSPEC_TEST_KEEP_IMAGES")))
    try:
        yield deploy_iris(engine, tmp_path_factory.mktemp("iris"), base_image, wheelhouse)
    finally:
        problems = engine.cleanup()
        assert not problems, problems

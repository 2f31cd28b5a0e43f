"""A Pulumi `Mocks` that performs pulumi-docker resources on a real Docker engine: programs are provisioned for real."""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pulumi
from docker.models.containers import _create_container_args

from tests.docker.container_config import plan_container
from tests.docker.passwords import random_password
from tests.docker.ssh_bridge import SshBridge

LABEL = "mlspec.test"
_STEP = re.compile(r"^ ---> ([0-9a-f]{12})$", re.MULTILINE)


class EngineError(Exception):
    """A resource the engine could not create as declared; the message says which and why."""


@dataclass
class Created:
    """One resource this engine created on the engine (or generated), with what it returned to the program."""

    typ: str
    name: str
    id: str
    inputs: dict[str, Any]
    state: dict[str, Any]
    seconds: float = 0.0
    host: str = ""  # the Docker host it was created through: the engine's, or an ssh:// provider's


@dataclass
class DockerEngine(pulumi.runtime.Mocks):
    """Each `new_resource` creates the declared object on the engine; `cleanup()` removes all of it.

    Resources are registered from Pulumi's thread pool, so independent images build in parallel; every
    bookkeeping change takes the lock.
    """

    client: docker.DockerClient = field(default_factory=lambda: docker.from_env(version="auto", timeout=600))
    session: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    host: str = field(default_factory=lambda: os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))
    cwd: Path | None = None  # relative build contexts and upload sources resolve here (default: the process cwd)
    keep_images: bool = False  # leave built images (and their layer cache) for a faster next run
    run_timeout_s: float = 900.0  # the longest a run-to-completion container may take
    created: list[Created] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    build_steps: list[str] = field(default_factory=list)  # image ids of build steps, removed with the images
    bridges: dict[str, SshBridge] = field(default_factory=dict)  # provider id -> the ssh:// host it reaches
    _clients: dict[str, docker.DockerClient] = field(default_factory=dict)  # provider id -> its client
    _local: threading.local = field(default_factory=threading.local)  # the client of the resource in hand
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- the Mocks interface -------------------------------------------------------------------------------

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        if not args.custom:  # component resources (mlspec's own) only group their children
            return "", inputs
        if args.typ == "pulumi:providers:docker" and str(inputs.get("host", "")).startswith("ssh://"):
            return self._ssh_provider(args.name, inputs)
        if args.typ == "pulumi:providers:docker" and inputs.get("host") not in (None, self.host):
            # Honest over convenient: resources meant for another host are not quietly made on this one.
            return self._fail(args.typ, args.name, f"the program targets Docker host {inputs['host']}; the test "
                              f"engine works on {self.host} or over SSH only (set mlspec:dockerHost to it, or unset "
                              "it)")
        if args.typ.startswith("pulumi:providers:"):
            return f"{args.name}-provider", inputs
        handler = self._handlers().get(args.typ)
        if handler is None:
            return self._fail(args.typ, args.name, "this resource type is not performed by the test engine")
        provider_id = (args.provider or "").rsplit("::", 1)[-1]
        self._local.client = self._clients.get(provider_id, self.client)
        host = self.bridges[provider_id].host if provider_id in self.bridges else self.host
        started = time.monotonic()
        try:
            resource_id, state = handler(args.name, inputs)
        except Exception as error:  # any failure is reported with the resource it belongs to
            why = str(error) if isinstance(error, EngineError) else f"{type(error).__name__}: {error}"
            return self._fail(args.typ, args.name, why)
        finally:
            self._local.client = None
        with self._lock:
            self.created.append(Created(args.typ, args.name, resource_id, inputs, state, time.monotonic() - started,
                                        host))
        return resource_id, state

    def _ssh_provider(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """A provider for an ssh:// host: its resources are made through `ssh [sshOpts] ... docker system
        dial-stdio`, as pulumi-docker makes them, whatever engine answers at the far end."""
        provider_id = f"{name}-provider"
        folder = Path(tempfile.mkdtemp(prefix="mlspec-ssh-"))
        ssh_opts = inputs.get("sshOpts") or []
        if isinstance(ssh_opts, str):  # a provider's inputs reach it JSON-encoded
            ssh_opts = json.loads(ssh_opts)
        bridge = SshBridge(inputs["host"], list(ssh_opts), folder / "docker.sock")
        try:
            client = docker.DockerClient(base_url=bridge.base_url, version="auto", timeout=600)
        except docker.errors.DockerException as error:
            bridge.close()
            return self._fail("pulumi:providers:docker", name, f"Docker host {inputs['host']} does not answer over "
                              f"SSH: {error}; {' '.join(bridge.errors)}")
        with self._lock:
            self.bridges[provider_id], self._clients[provider_id] = bridge, client
        return provider_id, inputs

    @property
    def target_client(self) -> docker.DockerClient:
        """The client of the resource being made: its provider's host, else the engine's."""
        client: docker.DockerClient | None = getattr(self._local, "client", None)
        return client or self.client

    # A plain dict, not the annotated tuple: the mock monitor crashes on `(dict, None)`.
    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        return self._fail(args.token, "(invoke)", "provider functions are not performed by the test engine")

    # --- bookkeeping ---------------------------------------------------------------------------------------

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL: self.session}

    def find(self, typ: str, name: str | None = None) -> list[Created]:
        with self._lock:
            return [c for c in self.created if c.typ == typ and (name is None or c.name == name)]

    def cleanup(self) -> list[str]:
        """Remove everything created by this session (containers, networks, volumes, images); return what failed."""
        problems: list[str] = []
        for client in [*self._clients.values(), self.client]:  # what went over SSH first, through SSH
            problems += self._cleanup(client)
        for bridge in self.bridges.values():
            bridge.close()
        return problems

    def _cleanup(self, client: docker.DockerClient) -> list[str]:
        problems: list[str] = []
        selector = {"label": f"{LABEL}={self.session}"}
        steps: list[tuple[str, Any]] = [
            ("container", lambda: [c.remove(force=True, v=True)
                                   for c in client.containers.list(all=True, filters=selector)]),
            ("network", lambda: [n.remove() for n in client.networks.list(filters=selector)]),
            ("volume", lambda: [v.remove(force=True) for v in client.volumes.list(filters=selector)]),
        ]
        if not self.keep_images:
            steps.append(("image", lambda: self._remove_images(client, selector)))
            steps.append(("build step", lambda: self._remove_build_steps(client)))
        for what, step in steps:
            try:
                step()
            except docker.errors.NotFound:
                continue  # removed meanwhile through another client of the same engine
            except docker.errors.DockerException as error:
                problems.append(f"removing {what}s of session {self.session}: {error}")
        return problems

    def _remove_images(self, client: docker.DockerClient, selector: dict[str, str]) -> None:
        """The session's images, children before parents (a job's image is built on its environment's): an image
        with children cannot be removed, even by force, so each pass removes what it can until none is left."""
        remaining = [image.id for image in client.images.list(filters=selector)]
        while remaining:
            blocked: list[str] = []
            for image_id in remaining:
                try:
                    client.images.remove(image_id, force=True)
                except docker.errors.NotFound:
                    continue
                except docker.errors.APIError as error:
                    if error.status_code != 409:
                        raise
                    blocked.append(image_id)
            if len(blocked) == len(remaining):
                raise docker.errors.APIError(f"images {', '.join(i[7:19] for i in blocked)} still have children")
            remaining = blocked

    def _remove_build_steps(self, client: docker.DockerClient) -> None:
        """Step images no tag holds any more (a build stage's last step, and its parents with it); a tagged
        image (the base image) or one with children is left alone."""
        for step in reversed(self.build_steps):
            try:
                if not client.images.get(step).tags:
                    client.images.remove(step)
            except (docker.errors.NotFound, docker.errors.APIError):
                continue

    def _fail(self, typ: str, name: str, why: str) -> Any:
        message = f"{typ} {name!r}: {why}"
        with self._lock:
            self.errors.append(message)
        raise EngineError(message)

    def _handlers(self) -> dict[str, Any]:
        return {
            "docker:index/network:Network": self._network,
            "docker:index/volume:Volume": self._volume,
            "docker:index/image:Image": self._image,
            "docker:index/remoteImage:RemoteImage": self._remote_image,
            "docker:index/container:Container": self._container,
            "random:index/randomPassword:RandomPassword": self._random_password,
        }

    def _path(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else (self.cwd or Path(os.getcwd())) / path

    def _free_name(self, kind: str, name: str) -> None:
        """A leftover of an earlier, interrupted test session may hold the name: remove it; never anything else."""
        getter = {"container": self.target_client.containers, "network": self.target_client.networks,
                  "volume": self.target_client.volumes}[kind]
        try:
            existing = getter.get(name)
        except docker.errors.NotFound:
            return
        found = existing.attrs.get("Labels") or existing.attrs.get("Config", {}).get("Labels") or {}
        if LABEL not in found:
            raise EngineError(f"a {kind} named {name!r} already exists and was not made by a test; remove it first")
        if kind == "container":
            existing.remove(force=True, v=True)
        else:
            existing.remove()

    # --- resources -----------------------------------------------------------------------------------------

    def _network(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        network_name = inputs.get("name") or f"{name}-{secrets.token_hex(3)}"
        self._free_name("network", network_name)
        declared = {item["label"]: item["value"] for item in inputs.get("labels", [])}
        network = self.target_client.networks.create(
            network_name, driver=inputs.get("driver", "bridge"), internal=bool(inputs.get("internal", False)),
            attachable=bool(inputs.get("attachable", False)), options=inputs.get("options"),
            labels={**declared, **self.labels})
        return network.id, {**inputs, "name": network_name, "driver": inputs.get("driver", "bridge"),
                            "scope": network.attrs.get("Scope", "local")}

    def _volume(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        volume_name = inputs.get("name") or f"{name}-{secrets.token_hex(3)}"
        self._free_name("volume", volume_name)
        declared = {item["label"]: item["value"] for item in inputs.get("labels", [])}
        volume = self.target_client.volumes.create(volume_name, driver=inputs.get("driver", "local"),
                                            driver_opts=inputs.get("driverOpts"), labels={**declared, **self.labels})
        return volume.name, {**inputs, "name": volume.name, "driver": inputs.get("driver", "local"),
                             "mountpoint": volume.attrs.get("Mountpoint", "")}

    def _image(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if not inputs.get("skipPush"):
            raise EngineError("only local images (skipPush: true) can be built: no registry can be reached")
        tag = inputs["imageName"]
        build = inputs.get("build") or {}
        context = self._path(build.get("context", "."))
        dockerfile = self._path(build["dockerfile"]) if build.get("dockerfile") else context / "Dockerfile"
        if not dockerfile.is_file():
            raise EngineError(f"Dockerfile {dockerfile} does not exist")
        log: list[str] = []
        # The SDK speaks the classic builder; Dockerfiles that need BuildKit-only syntax fail here, loudly.
        # Its step images (" ---> ID") include earlier stages of a multi-stage build, which no tag keeps.
        for chunk in self.target_client.api.build(
                path=str(context), dockerfile=str(dockerfile.resolve()), tag=tag, buildargs=build.get("args"),
                target=build.get("target"), platform=build.get("platform"), labels=self.labels,
                rm=True, forcerm=True, decode=True):
            if "stream" in chunk:
                log.append(chunk["stream"])
                with self._lock:
                    self.build_steps += _STEP.findall(chunk["stream"])
            if "error" in chunk:
                tail = "".join(log)[-4000:]
                raise EngineError(f"docker build of {tag} failed: {chunk['error'].strip()}\n{tail}")
        image = self.target_client.images.get(tag)
        # A local image has no registry digest; its id is the immutable reference a container can run.
        return image.id, {**inputs, "imageName": tag, "baseImageName": tag, "repoDigest": image.id,
                          "context": str(context), "dockerfile": str(dockerfile), "platform": build.get("platform"),
                          "registryServer": ""}

    def _remote_image(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        try:
            image = self.target_client.images.get(inputs["name"])
        except docker.errors.ImageNotFound as error:
            raise EngineError(f"image {inputs['name']!r} is not on the engine and no registry can be reached; "
                              "build or import it first (scripts/docker-base-image)") from error
        digests = image.attrs.get("RepoDigests") or []
        return f"{image.id}{inputs['name']}", {**inputs, "imageId": image.id,
                                               "repoDigest": digests[0] if digests else image.id}

    def _container(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        container_name = inputs.get("name") or f"{name}-{secrets.token_hex(3)}"
        plan = plan_container(inputs, container_name, self.labels, self.cwd or Path(os.getcwd()))
        self._free_name("container", container_name)
        container = self._create(plan.create)
        for network, aliases in plan.networks[1:]:
            self.target_client.api.connect_container_to_network(container.id, network, aliases=aliases)
        if plan.uploads is not None:
            container.put_archive("/", plan.uploads)
        state: dict[str, Any] = {**inputs, "name": container_name}
        if inputs.get("start", True):
            container.start()
            self._after_start(container, inputs, state)
        container.reload()
        state["networkDatas"] = [
            {"networkName": net, "ipAddress": data.get("IPAddress", ""), "gateway": data.get("Gateway", "")}
            for net, data in (container.attrs["NetworkSettings"].get("Networks") or {}).items()]
        state["ports"] = [{**port, "external": self._published(container, port)} for port in inputs.get("ports", [])]
        return container.id, state

    def _create(self, kwargs: dict[str, Any]) -> Any:
        """`containers.create` on the host the resource is for, and the stop timeout too, which only the
        low-level call takes."""
        client = self.target_client
        kwargs = dict(kwargs)
        stop_timeout = kwargs.pop("stop_timeout", None)
        if stop_timeout is None:
            return client.containers.create(**kwargs)
        kwargs["version"] = client.api._version
        created = client.api.create_container(**_create_container_args(kwargs), stop_timeout=stop_timeout)
        return client.containers.get(created["Id"])

    def _after_start(self, container: Any, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        must_run = inputs.get("mustRun", True)
        if inputs.get("attach"):
            result = container.wait(timeout=self.run_timeout_s)
            state["exitCode"] = int(result["StatusCode"])
            if inputs.get("logs"):
                state["containerLogs"] = container.logs(stdout=True, stderr=True).decode(errors="replace")
            if must_run:
                raise EngineError(f"container exited ({state['exitCode']}) and mustRun is true; "
                                  "a run-to-completion container needs mustRun: false")
        elif inputs.get("wait"):
            if "healthcheck" not in inputs and not container.attrs["Config"].get("Healthcheck"):
                raise EngineError("wait: true needs a healthcheck")
            self._wait_healthy(container, float(inputs.get("waitTimeout", 60)))
        elif must_run:
            time.sleep(0.5)  # a container that dies on start is reported here, as the provider does
            container.reload()
            if not container.attrs["State"]["Running"]:
                raise EngineError(f"container exited right after start: {self._tail(container)}")

    def _wait_healthy(self, container: Any, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        status = "starting"
        while time.monotonic() < deadline:
            container.reload()
            state = container.attrs["State"]
            status = (state.get("Health") or {}).get("Status", "none")
            if status == "healthy":
                return
            if status == "unhealthy" or not state["Running"]:
                break
            time.sleep(0.5)
        raise EngineError(f"container not healthy after {timeout_s:.0f}s (health: {status}): {self._tail(container)}")

    @staticmethod
    def _tail(container: Any) -> str:
        logs = container.logs(stdout=True, stderr=True, tail=30).decode(errors="replace")
        return f"last logs:\n{logs}" if logs else "no logs"

    @staticmethod
    def _published(container: Any, port: dict[str, Any]) -> int | None:
        key = f"{int(port['internal'])}/{port.get('protocol', 'tcp')}"
        bindings = (container.attrs["NetworkSettings"].get("Ports") or {}).get(key) or []
        return int(bindings[0]["HostPort"]) if bindings else None

    def _random_password(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "none", {**inputs, "result": random_password(inputs)}

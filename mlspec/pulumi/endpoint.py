"""`OnlineEndpoint`: scoring-server replicas per deployment behind a gateway that checks keys and splits traffic."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from mlspec.pulumi import containers as c
from mlspec.pulumi.context import image_tag, stage_job
from mlspec.pulumi.environment import Environment
from mlspec.pulumi.job import FILES
from mlspec.pulumi.workspace import Workspace
from mlspec.runtime import envfiles
from mlspec.runtime.httpserver import DRAIN_S
from mlspec.runtime.internal_token import ENV as INTERNAL_TOKEN_ENV
from mlspec.runtime.keys import key_hash
from mlspec.runtime.liveness import supervised
from mlspec.runtime.probing import ProbeSettings
from mlspec.runtime.serving.script import server_arguments
from mlspec.spec.endpoint import Probes, RequestSettings

SERVING_PORT = 8080  # inside each replica and the gateway
GATEWAY_CONFIG = f"{envfiles.DIRECTORY}/gateway.json"
KEY_SLOTS = ("primary", "secondary")
GATEWAY_HEALTH = c.Health(interval=2, timeout=2, retries=15)
GATEWAY_SIZE = c.Size(cpus=1.0, memory_mb=512)  # one event loop: more than a core is never used


@dataclass(frozen=True)
class ScoringArgs:
    """A deployment's scoring script, baked with its code folder onto the environment's image.

    :param content_hash: of the script's files (and the schema file): with the environment image's tag it tags
        the replicas' image, so an edited script is a new image and new replicas.
    :param dockerfile: the generated Dockerfile, relative to the project folder.
    :param code: the code folder, relative to the spec root: first on the script's import path.
    :param scoring_script: the script's path inside ``code``: its ``init()`` and ``run(raw_data)`` answer.
    :param files: every file baked into the image (the code folder's and the schema file), relative to the spec
        root, with the sha256 it was compiled with; a file changed since then stops the update (compile again).
    :param input_schema: a JSON Schema file relative to the spec root (in ``files``), ``signature`` (the model's
        MLflow signature), or None: what each request body must satisfy before ``run()`` sees it.
    """

    content_hash: str
    dockerfile: str
    code: str
    scoring_script: str
    files: dict[str, str] = field(default_factory=dict)
    input_schema: str | None = None

    def arguments(self) -> list[str]:
        """The scoring server's arguments for the script, at the files' places in the image."""
        return server_arguments(FILES, self.code, self.scoring_script, self.input_schema)


@dataclass(frozen=True)
class DeploymentArgs:
    """One deployment: a model version served by identical replicas.

    :param name: the deployment's name (``blue``); names its containers and its share of traffic.
    :param environment: the Environment whose image the replicas run (it must be able to load the model).
    :param model: the registered model's name.
    :param version: the version to serve: a pinned number, or a TrainingJob's ``version(model)`` output so a
        retrained model redeploys; None with no alias: ``@latest`` in the registry.
    :param sha256: the digest the version's files must have before anything in them is unpickled: a
        TrainingJob's ``digest(model)`` output (computed as it registered them), so rewriting the tracking
        server's store cannot vouch for changed files; None or '': the registry's ``mlspec.sha256`` tag.
    :param alias: a registry alias to serve (``champion``) instead of a version.
    :param instance_count: replicas.
    :param workers: server processes per replica.
    :param probes: ``{"readiness": {initial_delay, period, timeout, failure_threshold, ...}, "liveness": ...}``;
        what is left out takes the spec's defaults (``mlspec.spec.Probes``).
    :param request_settings: ``{request_timeout, max_body_size, max_concurrent_requests_per_instance,
        max_queue_wait}``; what is left out takes the spec's defaults (``mlspec.spec.RequestSettings``).
    :param batching: ``{max_batch_size, max_wait}`` for torch models; None: no stacking of requests.
    :param environment_variables: extra variables for the scoring server.
    :param size: CPU, memory and GPUs of each replica.
    :param scoring: its scoring script; None: the model's own predict answers.
    """

    name: str
    environment: Environment
    model: str
    version: pulumi.Input[int | None] = None
    sha256: pulumi.Input[str] | None = None
    alias: str | None = None
    instance_count: int = 1
    workers: int = 1
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)
    request_settings: dict[str, Any] = field(default_factory=dict)
    batching: dict[str, Any] | None = None
    environment_variables: dict[str, str] = field(default_factory=dict)
    size: c.Size = field(default_factory=c.Size)
    scoring: ScoringArgs | None = None


@dataclass(frozen=True)
class OnlineEndpointArgs:
    """An online endpoint.

    :param deployments: the deployments, each with its replicas.
    :param traffic: percent of requests per deployment (sums to 100).
    :param mirror: percent of requests copied to a deployment whose answers are discarded.
    :param auth: ``key`` (every request needs a key) or ``none``.
    :param port: the host port the gateway is published on (on the stack's ``mlspec:publishAddress``).
    :param tags: the endpoint's tags, as ``mlspec.tag.KEY`` labels of its containers (Docker cannot relabel a
        container, so a tag change recreates them).
    :param host: the attached Docker host its deployments' compute names (all of them run on one host: the
        gateway reaches its replicas by name on a network of that host): the gateway, the replicas and their
        images are there (see `AttachedHost`), the gateway published on the stack's publish address of that
        host; None: the stack's host.
    """

    deployments: list[DeploymentArgs]
    traffic: dict[str, int]
    port: int
    mirror: dict[str, int] = field(default_factory=dict)
    auth: str = "key"
    tags: dict[str, str] = field(default_factory=dict)
    host: str | None = None


class OnlineEndpoint(pulumi.ComponentResource):
    """Replica containers (``mlspec.runtime.serving``, waited on until ``/health`` passes) and a gateway
    container (``mlspec.runtime.gateway``) that knows only the hashes of the endpoint's keys. Keys are
    ``RandomPassword`` results: secrets in the state, exported as secrets, never in plain text elsewhere.

    Rollouts drop no request. A replica's container is named by its generation (a hash of everything it runs), so
    a changed model or setting makes Pulumi create the new containers (waited on until healthy) before it deletes
    the old ones. Every generation's replicas share one network alias per deployment, which the gateway resolves
    to find them (it joins each once its readiness probe passes); its own container never changes for it. A
    replica told to stop fails its readiness and marks its answers for a notice period (the gateway's probe
    period) while still answering, then finishes what it holds and exits; its stop timeout covers both.

    The replicas answer the gateway alone: their names resolve only on the endpoint's own internal network
    (no way out, no published port), which only the gateway joins besides them, and they require an internal
    token (another ``RandomPassword``, given to the gateway and the replicas as a variable) on every request
    but their health probes. They are on the workspace's model network too, without a name, to fetch their model
    from the tracking server, the only other container there (the workspace network for a team's own server).
    Every container is `hardened`: read-only, no capabilities, hard CPU and memory limits."""

    url: pulumi.Output[str]
    keys: pulumi.Output[dict[str, str]]

    def __init__(self, name: str, workspace: Workspace, args: OnlineEndpointArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        self.host = host = workspace.attached(args.host)
        super().__init__("mlspec:docker:OnlineEndpoint", name, None, workspace.options(opts, host))
        child = pulumi.ResourceOptions(parent=self)
        self.passwords = {}
        self.internal_token = random.RandomPassword(f"{name}-internal-token", length=48, special=False, opts=child)
        self.replica_network = docker.Network(
            f"{name}-replicas", name=pulumi.Output.concat(workspace.network_on(host), f"-{name}-replicas"),
            internal=True,
            labels=[docker.NetworkLabelArgs(label=k, value=v) for k, v in
                    sorted({"mlspec.workspace": workspace.name, "mlspec.resource": f"endpoint/{name}"}.items())],
            opts=child)
        if args.auth == "key":
            self.passwords = {slot: random.RandomPassword(f"{name}-{slot}-key", length=43, special=False,
                                                          opts=child) for slot in KEY_SLOTS}
        # A deployment with a scoring script runs its own image: the environment's plus the script's files.
        self.images = {d.name: self._scoring_image(name, workspace, d) for d in args.deployments if d.scoring}
        self.replicas: dict[str, list[docker.Container]] = {
            d.name: [self._replica(name, workspace, d, i, args.tags) for i in range(d.instance_count)]
            for d in args.deployments}
        hashes = pulumi.Output.all(*[p.result for p in self.passwords.values()]).apply(
            lambda keys: [key_hash(k) for k in keys])
        config = hashes.apply(lambda found: _gateway_config(name, args, found))
        publish = workspace.settings.publish_address
        gateway_alias = f"{name}-gateway"
        self.gateway = docker.Container(
            gateway_alias,
            name=f"{workspace.name}-{gateway_alias}",
            image=workspace.runtime_on(host).image_name,
            command=c.with_files(c.PYTHON, "-m", "mlspec.runtime.gateway", "--config", GATEWAY_CONFIG, "--host",
                                 "0.0.0.0", "--port", str(SERVING_PORT), "--internal-token-env", INTERNAL_TOKEN_ENV),
            user=c.USER,
            envs=[self._token_variable(), c.files_variable({GATEWAY_CONFIG: config})],
            ports=[docker.ContainerPortArgs(internal=SERVING_PORT, external=args.port, ip=publish)],
            networks_advanced=[*c.network(workspace.network_on(host), gateway_alias),
                               *c.network(self.replica_network.name)],
            healthcheck=GATEWAY_HEALTH.check(SERVING_PORT, "/health"),
            restart="unless-stopped",
            wait=True,
            wait_timeout=GATEWAY_HEALTH.wait_timeout,
            labels=c.labels(workspace.name, f"endpoint/{name}", {"mlspec.role": "gateway"}, args.tags),
            **c.hardened(GATEWAY_SIZE),
            opts=pulumi.ResourceOptions(parent=self,
                                        depends_on=[r for rs in self.replicas.values() for r in rs]),
        )
        address = publish if host is None else host.url_address(publish)
        self.url = pulumi.Output.from_input(f"http://{address}:{args.port}")
        self.keys = pulumi.Output.secret(pulumi.Output.all(**{s: p.result for s, p in self.passwords.items()}))
        self.register_outputs({"url": self.url, "keys": self.keys})

    def _scoring_image(self, endpoint: str, workspace: Workspace, d: DeploymentArgs) -> docker.Image:
        assert d.scoring is not None
        environment = workspace.environment_on(d.environment, self.host)
        context = stage_job(f"scoring-{endpoint}-{d.name}", workspace.args.spec_root, d.scoring.files)
        tag = image_tag(d.scoring.content_hash, environment.tag)
        return docker.Image(
            f"{endpoint}-{d.name}-scoring",
            image_name=f"{workspace.name}-scoring-{endpoint}-{d.name}:{tag}",
            build=docker.DockerBuildArgs(context=context.as_posix(), dockerfile=d.scoring.dockerfile,
                                         args={"ENVIRONMENT_IMAGE": environment.image_name}),
            skip_push=True,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _token_variable(self) -> pulumi.Output[str]:
        """`MLSPEC_INTERNAL_TOKEN=...`, a secret in the state like the token it holds."""
        return pulumi.Output.secret(self.internal_token.result.apply(lambda token: f"{INTERNAL_TOKEN_ENV}={token}"))

    def _replica(self, endpoint: str, workspace: Workspace, d: DeploymentArgs, index: int,
                 tags: dict[str, str]) -> docker.Container:
        probes = Probes.model_validate(d.probes)
        probe, live = probes.readiness, probes.liveness
        # Docker checks more often than the probe period (at most every 5 s) so replicas join sooner.
        health = c.Health(interval=min(probe.period, 5.0), timeout=probe.timeout,
                          retries=probe.failure_threshold, start_period=probe.initial_delay)
        model_uri = pulumi.Output.from_input(d.version).apply(lambda v: _model_uri(d, v))
        settings = RequestSettings.model_validate(d.request_settings)
        command: list[pulumi.Input[str]] = [
            c.PYTHON, "-m", "mlspec.runtime.serving", "--model-uri", model_uri, "--tracking-uri",
            workspace.tracking_uri, "--host", "0.0.0.0", "--port", str(SERVING_PORT), "--workers", str(d.workers),
            "--name", d.name, "--max-body-size", str(settings.max_body_size),
            "--request-timeout", str(settings.request_timeout), "--internal-token-env", INTERNAL_TOKEN_ENV]
        if d.sha256 is not None:  # the digest as its job registered it, not as the tracking server says it now
            command += ["--sha256", d.sha256]
        if d.batching:
            command += ["--max-batch-size", str(d.batching["max_batch_size"]),
                        "--max-wait", str(d.batching["max_wait"])]
        if d.scoring is not None:
            command += d.scoring.arguments()
        # The gateway learns a replica is stopping from its answers, or without traffic from its next probe.
        notice = probe.period + probe.timeout
        command += ["--drain-notice", f"{notice:g}"]
        stop_timeout = math.ceil(notice + DRAIN_S) + 5
        # Docker only marks a container unhealthy: a supervisor in it probes the live route and exits when the
        # probe fails, so the restart policy starts the replica again. It hands a stop to the server untouched.
        command = supervised(c.PYTHON, SERVING_PORT, ProbeSettings(
            initial_delay=live.initial_delay, period=live.period, timeout=live.timeout,
            failure_threshold=live.failure_threshold), command)
        environment = workspace.environment_on(d.environment, self.host)
        runs: dict[str, Any] = dict(
            image=self.images[d.name].image_name if d.name in self.images else environment.image_name,
            command=command,
            user=c.USER,
            envs=[*c.envs({**d.environment.env, **d.environment_variables,
                           "MLFLOW_TRACKING_URI": workspace.tracking_uri}), self._token_variable()],
            # Named only on the internal network, by the alias every replica of the deployment shares (the
            # gateway's way in); on the workspace's model network, unnamed, only to reach the tracking server.
            networks_advanced=[*c.network(self.replica_network.name, replica_alias(endpoint, d.name)),
                               *c.network(workspace.model_network_on(self.host))],
            healthcheck=health.check(SERVING_PORT, "/health"),
            restart="unless-stopped",
            wait=True,
            wait_timeout=health.wait_timeout,
            stop_timeout=stop_timeout,
            destroy_grace_seconds=stop_timeout,
            labels=c.labels(workspace.name, f"endpoint/{endpoint}",
                            {"mlspec.deployment": d.name, "mlspec.model": d.model}, tags),
            **c.hardened(d.size),
        )
        return docker.Container(
            f"{endpoint}-{d.name}-{index}",
            name=pulumi.Output.concat(workspace.name, f"-{endpoint}-{d.name}-", generation(runs), f"-{index}"),
            **runs,
            opts=pulumi.ResourceOptions(parent=self, depends_on=workspace.tracking),
        )


def replica_alias(endpoint: str, deployment: str) -> str:
    """The network alias every replica of a deployment holds, whatever its generation."""
    return f"{endpoint}-{deployment}"


def generation(runs: dict[str, Any]) -> pulumi.Output[str]:
    """A short hash of every input of a replica's container but its name: a change to any of them names a new
    container, so Pulumi starts it before it deletes the old one (Docker names are unique, and nothing asks for
    delete-before-replace). The hash of the internal token it covers is no secret, so the name is not one."""
    digest = pulumi.Output.from_input(runs).apply(
        lambda values: hashlib.sha256(json.dumps(values, sort_keys=True, default=vars).encode()).hexdigest()[:10])
    return pulumi.Output.unsecret(digest)


def _model_uri(d: DeploymentArgs, version: int | None) -> str:
    if version is not None:
        return f"models:/{d.model}/{version}"
    return f"models:/{d.model}@{d.alias or 'latest'}"


def _gateway_limits(d: DeploymentArgs, settings: RequestSettings) -> dict[str, Any]:
    """Enforced by the gateway, per replica: the concurrency limit with its queue, the body limit (the replicas'
    own, so that a body too large is refused before it is sent), and the readiness probe."""
    return {"max_concurrent": settings.max_concurrent_requests_per_instance, "max_body_size": settings.max_body_size,
            "max_queue_wait": settings.max_queue_wait,
            "readiness": Probes.model_validate(d.probes).readiness.model_dump(mode="json")}


def _gateway_config(name: str, args: OnlineEndpointArgs, hashes: list[str]) -> str:
    """The gateway's routing: each deployment with the name its replicas share, limits and the model it serves (so
    a new generation of replicas leaves the gateway's container as it is). The version is
    stated only where the spec pins it: one a job registers changes on every retraining, and a changed config
    would replace the gateway's container (its front door down) where only the replicas need replacing; Open
    Inference Protocol paths reach such a deployment by its model's name, and its replicas check the version."""
    limits = [RequestSettings.model_validate(d.request_settings) for d in args.deployments]
    config = {
        "endpoint": name,
        "auth": args.auth,
        "key_hashes": hashes,
        "deployments": {d.name: {"weight": args.traffic.get(d.name, 0),
                                 "discover": f"http://{replica_alias(name, d.name)}:{SERVING_PORT}",
                                 "model": {"name": d.model,
                                           "version": str(d.version) if isinstance(d.version, int) else None},
                                 **_gateway_limits(d, limit)}
                        for d, limit in zip(args.deployments, limits, strict=True)},
        "mirror": dict(args.mirror),
        "request_timeout": max(s.request_timeout for s in limits) + 1,
    }
    return json.dumps(config, indent=2, sort_keys=True) + "\n"

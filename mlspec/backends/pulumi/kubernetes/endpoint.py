"""An online endpoint as Kubernetes objects: per deployment a Deployment of scoring servers with its Service,
PodDisruptionBudget, NetworkPolicy and HorizontalPodAutoscaler; the gateway as its own Deployment.

Secrets the objects name but never hold (no key or token is ever in compiled output):

- ``<endpoint>-internal-token``, key ``token``: the endpoint's internal token (at least 32 characters), mounted as a
  file for the gateway's and the replicas' ``--internal-token-file``; replicas answer only probes without it.
- ``<endpoint>-gateway-keys``, key ``key_hashes`` (``auth: key`` only): the SHA-256 hex digests of the accepted
  keys, one a line, mounted for the gateway's ``--key-hashes-file``; the keys themselves live nowhere in the cluster.

The Pulumi program makes both from generated passwords (the keys are its secret outputs); users of the plain
manifests create them before applying (`endpoint_names.external_secrets` lists them with a command for each). The
gateway reads the key digests at start: a rotation rolls its pods, the program annotating its pod template with a
hash of the digests (mlspec.pulumi.kubernetes.secrets); manifests users: `kubectl rollout restart deployment/NAME`.

A deployment's model digest: ``--sha256`` where the renderer knows it (``digests``); otherwise the scoring server
checks the files against the ``mlspec.sha256`` tag the registering job wrote on the model version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from mlspec.backends.pulumi.kubernetes.context import SERVICE_TYPES, Context, image
from mlspec.backends.pulumi.kubernetes.endpoint_names import (
    GATEWAY,
    KEY_HASHES_KEY,
    REPLICA,
    SERVING_PORT,
    TOKEN_KEY,
    gateway_name,
    gateway_selector,
    keys_secret,
    replica_count,
    replica_name,
    replica_selector,
    replica_url,
    token_secret,
)
from mlspec.backends.pulumi.kubernetes.endpoint_policy import (
    autoscaler,
    disruption_budget,
    gateway_policy,
    replica_policy,
)
from mlspec.backends.pulumi.kubernetes.jobs import DEPENDS_ANNOTATION, FILES, job_name
from mlspec.backends.pulumi.kubernetes.meta import (
    HASH_LABEL_LENGTH,
    Object,
    dns_name,
    k8s_object,
    labels,
    metadata,
)
from mlspec.backends.pulumi.kubernetes.pods import SCRATCH, container, http_probe, pod_spec, with_tracking_credentials
from mlspec.backends.pulumi.kubernetes.scheduling import replica_scheduling
from mlspec.backends.pulumi.model import (
    ComputeModel,
    DeploymentModel,
    EndpointModel,
    EnvironmentModel,
    JobModel,
    ResourceSize,
)
from mlspec.runtime.probing import LIVENESS_PATH
from mlspec.runtime.serving.script import server_arguments
from mlspec.spec.endpoint import Probes, RequestSettings

GATEWAY_SERVICE_PORT = 80  # the endpoint's address: http://<endpoint>.<namespace>.svc
GATEWAY_REPLICAS = 2  # the front door survives a node drain or a lost node
GATEWAY_SIZE = ResourceSize(cpus=1, memory_mb=512, gpus=0)  # one event loop: more than a core is never used
GATEWAY_CONFIG_DIR = "/etc/mlspec/gateway"
GATEWAY_KEYS_DIR = "/etc/mlspec/keys"
TOKEN_DIR = "/etc/mlspec/token"
TOKEN_FILE = f"{TOKEN_DIR}/{TOKEN_KEY}"
TOKEN_MOUNT = {"name": "token", "mountPath": TOKEN_DIR, "readOnly": True}
CONFIG_KEY = "gateway.json"
PULL_ALLOWANCE_S = 120  # scheduling and an image pull before a replica's own start-up budget begins
DRAIN_DELAY_S = 5  # a stopping pod keeps serving this long, while Services stop sending it connections
READINESS_PATH = "/health"  # 200 once the model is ready (LIVENESS_PATH: 200 while the server answers)


def startup_budget(deployment: DeploymentModel) -> int:
    """Seconds a new replica has to load its model: the readiness probe's initial delay, then its period times its
    failure threshold (the deadline the other targets give it too)."""
    readiness = Probes.model_validate(deployment.settings.get("probes") or {}).readiness
    return int(readiness.initial_delay + readiness.period * readiness.failure_threshold + 0.999)


def _object_labels(ctx: Context, endpoint: EndpointModel, component: str, name: str,
                   selector: dict[str, str], content_hash: str | None) -> dict[str, str]:
    return {**labels(ctx.workspace, component, name, content_hash=content_hash, tags=endpoint.tags), **selector}


def _service(name: str, meta_labels: dict[str, str], selector: dict[str, str], port: int, ctx: Context,
             service_type: str = "ClusterIP") -> Object:
    return k8s_object("v1", "Service", metadata(name, ctx.namespace, meta_labels), spec={
        "type": service_type, "selector": dict(selector),
        "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]})


def _deployment(name: str, meta: Object, selector: dict[str, str], replicas: int | None, template: Object) -> Object:
    spec: Object = {}
    if replicas is not None:  # left out under an autoscaler, which owns the count
        spec["replicas"] = replicas
    spec.update({
        "selector": {"matchLabels": dict(selector)},
        # A new pod must be ready before an old one goes: the deployment never serves with fewer replicas.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": template,
    })
    return k8s_object("apps/v1", "Deployment", meta, spec=spec)


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LABEL_LENGTH]


def declared_hash(endpoint: EndpointModel) -> str:
    """A hash of what the spec declares of the endpoint itself, for its objects' `mlspec.io/hash` label. Not its
    content hash, which also covers the jobs upstream: a retrained model would relabel the gateway, its Service,
    PDB and NetworkPolicy (a preview full of changes to objects that do not change), where only the replicas of
    the retrained model roll (their template's `mlspec.io/model-source`)."""
    declared = {k: v for k, v in dataclasses.asdict(endpoint).items() if k != "content_hash"}
    return hashlib.sha256(json.dumps(declared, sort_keys=True, default=str).encode()).hexdigest()


def _model_uri(deployment: DeploymentModel) -> str:
    # A model a job of the spec registers is served at @latest: the pod template carries the job's content hash,
    # so a retrained model rolls the replicas onto the version it registered.
    if deployment.version is not None:
        return f"models:/{deployment.model}/{deployment.version}"
    return f"models:/{deployment.model}@{deployment.alias or 'latest'}"


def _replica_command(deployment: DeploymentModel, ctx: Context, digest: str | None) -> list[str]:
    settings = RequestSettings.model_validate(deployment.settings.get("request_settings") or {})
    command = ["python", "-m", "mlspec.runtime.serving", "--model-uri", _model_uri(deployment),
               "--tracking-uri", ctx.tracking_uri, "--host", "0.0.0.0", "--port", str(SERVING_PORT),
               "--workers", str(deployment.settings.get("workers", 1)), "--name", deployment.name,
               "--max-body-size", str(settings.max_body_size), "--request-timeout", str(settings.request_timeout),
               "--internal-token-file", TOKEN_FILE]
    if digest:
        command += ["--sha256", digest]
    batching = deployment.settings.get("batching")
    if batching:
        command += ["--max-batch-size", str(batching["max_batch_size"]), "--max-wait", str(batching["max_wait"])]
    scoring = deployment.scoring
    if scoring is not None:  # baked into the deployment's own image, as a job's code is into its image
        command += server_arguments(FILES, scoring.code, scoring.scoring_script, scoring.input_schema)
    return command


def _replica_probes(deployment: DeploymentModel) -> tuple[Object, Object, Object]:
    """Start-up and readiness on the model's readiness (200 only once it is loaded, verified and warmed up);
    liveness on the server answering at all, so a slow load or a failed one is never mistaken for a hang."""
    probes = Probes.model_validate(deployment.settings.get("probes") or {})
    ready, live = probes.readiness, probes.liveness
    startup = http_probe(READINESS_PATH, "http", period=ready.period, timeout=ready.timeout,
                         failure_threshold=ready.failure_threshold, initial_delay=ready.initial_delay)
    readiness = http_probe(READINESS_PATH, "http", period=ready.period, timeout=ready.timeout,
                           failure_threshold=ready.failure_threshold)
    readiness["successThreshold"] = ready.success_threshold
    liveness = http_probe(LIVENESS_PATH, "http", period=live.period, timeout=live.timeout,
                          failure_threshold=live.failure_threshold, initial_delay=live.initial_delay)
    return startup, readiness, liveness


def _draining(request_timeout: float) -> tuple[Object, dict[str, Any]]:
    """A stopping pod serves on for DRAIN_DELAY_S (its Service drops it meanwhile), then has the request timeout to
    finish what it holds."""
    lifecycle = {"preStop": {"sleep": {"seconds": DRAIN_DELAY_S}}}
    return lifecycle, {"terminationGracePeriodSeconds": max(30, DRAIN_DELAY_S + int(request_timeout + 0.999) + 5)}


def _token_volume(endpoint: EndpointModel) -> Object:
    """The internal token's Secret as a file, readable by the pod's group alone: a file, not a variable, so no
    child process or crash report inherits it."""
    return {"name": "token", "secret": {"secretName": token_secret(endpoint),
                                        "items": [{"key": TOKEN_KEY, "path": TOKEN_KEY}], "defaultMode": 0o440}}


def _replica_objects(endpoint: EndpointModel, deployment: DeploymentModel, ctx: Context,
                     environments: Mapping[str, EnvironmentModel], jobs: Mapping[str, JobModel],
                     digest: str | None, compute: ComputeModel | None, declared: str) -> list[Object]:
    name = replica_name(endpoint, deployment)
    selector = replica_selector(ctx, endpoint, deployment)
    object_labels = _object_labels(ctx, endpoint, REPLICA, name, selector, declared)
    pod_labels = _object_labels(ctx, endpoint, REPLICA, name, selector, None)  # a changed label would roll pods
    settings = RequestSettings.model_validate(deployment.settings.get("request_settings") or {})
    environment = environments.get(deployment.environment)
    env: dict[str, Any] = {**(environment.env if environment else {}),
                           **deployment.settings.get("environment_variables", {}),
                           "MLFLOW_TRACKING_URI": ctx.tracking_uri, "HOME": SCRATCH}  # the root is read-only
    startup, readiness, liveness = _replica_probes(deployment)
    own_image = deployment.scoring.var if deployment.scoring is not None else deployment.environment
    server = container("server", image(own_image), _replica_command(deployment, ctx, digest),
                       deployment.size, env=env, ports={"http": SERVING_PORT}, mounts=[TOKEN_MOUNT],
                       startupProbe=startup, readinessProbe=readiness, livenessProbe=liveness)
    lifecycle, grace = _draining(settings.request_timeout)
    server["lifecycle"] = lifecycle
    scheduling = replica_scheduling(ctx, compute, deployment.size.gpus, selector)
    annotations = {}
    registering = jobs.get(deployment.job) if deployment.job is not None else None
    if registering is not None:
        annotations["mlspec.io/model-source"] = registering.content_hash[:HASH_LABEL_LENGTH]
    template = {"metadata": {"labels": pod_labels, **({"annotations": annotations} if annotations else {})},
                "spec": with_tracking_credentials(ctx, pod_spec([server], volumes=[_token_volume(endpoint)],
                                                                 scheduling=scheduling, enableServiceLinks=False,
                                                                 **grace))}
    # Pulumi waits for the rollout: one new pod at a time (maxSurge 1), each with its model-load budget.
    timeout = (PULL_ALLOWANCE_S + startup_budget(deployment)) * replica_count(deployment)
    after = {DEPENDS_ANNOTATION: f"Job/{job_name(registering)}"} if registering is not None else {}
    meta = metadata(name, ctx.namespace, object_labels, {"pulumi.com/timeoutSeconds": str(timeout), **after})
    autoscale = deployment.autoscale
    objects = [
        _deployment(name, meta, selector, None if autoscale else int(deployment.settings["instance_count"]),
                    template),
        _service(name, object_labels, selector, SERVING_PORT, ctx),
        disruption_budget(name, ctx.namespace, object_labels, selector),
        replica_policy(name, ctx.namespace, object_labels, selector, gateway_selector(ctx, endpoint), SERVING_PORT),
    ]
    if autoscale:
        objects.append(autoscaler(name, ctx.namespace, object_labels, autoscale,
                                  settings.max_concurrent_requests_per_instance))
    return objects


def gateway_config(endpoint: EndpointModel, ctx: Context) -> str:
    """The gateway's routing (mlspec.runtime.gateway.config's format), keys aside: they come from their Secret.
    Each deployment is one address, its Service; the gateway's per-replica concurrency limit is then the
    deployment's, shared among the gateway's pods: a replica's limit times the replica count, over GATEWAY_REPLICAS.
    The version is stated only where the spec pins it, as on the Docker target."""
    deployments: dict[str, Any] = {}
    for d in endpoint.deployments:
        limits = RequestSettings.model_validate(d.settings.get("request_settings") or {})
        in_flight = limits.max_concurrent_requests_per_instance * replica_count(d)
        deployments[d.name] = {
            "weight": endpoint.traffic.get(d.name, 0), "replicas": [replica_url(ctx, endpoint, d)],
            "model": {"name": d.model, "version": None if d.version is None else str(d.version)},
            "max_concurrent": -(-in_flight // GATEWAY_REPLICAS), "max_body_size": limits.max_body_size,
            "max_queue_wait": limits.max_queue_wait,
            "readiness": Probes.model_validate(d.settings.get("probes") or {}).readiness.model_dump(mode="json")}
    config = {"endpoint": endpoint.name, "auth": endpoint.auth, "deployments": deployments,
              "mirror": dict(endpoint.mirror), "request_timeout": gateway_timeout(endpoint)}
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def gateway_timeout(endpoint: EndpointModel) -> float:
    """The gateway waits a second longer than the slowest deployment's own timeout, whose 504 it passes on."""
    return max(RequestSettings.model_validate(d.settings.get("request_settings") or {}).request_timeout
               for d in endpoint.deployments) + 1


def _gateway_objects(endpoint: EndpointModel, ctx: Context, declared: str) -> list[Object]:
    name = gateway_name(endpoint)
    selector = gateway_selector(ctx, endpoint)
    object_labels = _object_labels(ctx, endpoint, GATEWAY, name, selector, declared)
    pod_labels = _object_labels(ctx, endpoint, GATEWAY, name, selector, None)
    config = gateway_config(endpoint, ctx)
    config_map = dns_name(endpoint.name, "gateway")
    command = ["python", "-m", "mlspec.runtime.gateway", "--config", f"{GATEWAY_CONFIG_DIR}/{CONFIG_KEY}",
               "--host", "0.0.0.0", "--port", str(SERVING_PORT), "--internal-token-file", TOKEN_FILE]
    mounts = [{"name": "config", "mountPath": GATEWAY_CONFIG_DIR, "readOnly": True}, TOKEN_MOUNT]
    volumes: list[Object] = [{"name": "config", "configMap": {
        "name": config_map, "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}], "defaultMode": 0o444}},
        _token_volume(endpoint)]
    if endpoint.auth == "key":
        command += ["--key-hashes-file", f"{GATEWAY_KEYS_DIR}/{KEY_HASHES_KEY}"]
        mounts.append({"name": "keys", "mountPath": GATEWAY_KEYS_DIR, "readOnly": True})
        volumes.append({"name": "keys", "secret": {
            "secretName": keys_secret(endpoint), "items": [{"key": KEY_HASHES_KEY, "path": KEY_HASHES_KEY}],
            "defaultMode": 0o444}})
    health = http_probe("/health", "http", period=2, timeout=2, failure_threshold=15)
    gateway = container("gateway", image("runtime"), command, GATEWAY_SIZE,
                        env={"HOME": SCRATCH},
                        ports={"http": SERVING_PORT}, mounts=mounts,
                        readinessProbe=health, livenessProbe={**health, "failureThreshold": 5})
    lifecycle, grace = _draining(gateway_timeout(endpoint))
    gateway["lifecycle"] = lifecycle
    # The gateway reads its config at start: a changed config rolls its pods (one new pod ready before an old
    # one goes), while a new model version alone changes only the replicas.
    template = {"metadata": {"labels": pod_labels, "annotations": {"mlspec.io/config-hash": _short_hash(config)}},
                "spec": pod_spec([gateway], volumes=volumes, enableServiceLinks=False, **grace)}
    return [
        k8s_object("v1", "ConfigMap", metadata(config_map, ctx.namespace, object_labels), data={CONFIG_KEY: config}),
        _deployment(name, metadata(name, ctx.namespace, object_labels), selector, GATEWAY_REPLICAS, template),
        _service(name, object_labels, selector, GATEWAY_SERVICE_PORT, ctx, SERVICE_TYPES[ctx.expose]),
        disruption_budget(name, ctx.namespace, object_labels, selector),
        gateway_policy(name, ctx.namespace, object_labels, selector, SERVING_PORT),
    ]


def endpoint_objects(endpoint: EndpointModel, ctx: Context, *, environments: Sequence[EnvironmentModel] = (),
                     jobs: Sequence[JobModel] = (), digests: Mapping[str, str] | None = None,
                     computes: Sequence[ComputeModel] = ()) -> list[Object]:
    """Every object of an online endpoint, in a fixed order: each deployment's (Deployment, Service, PDB,
    NetworkPolicy, then its HPA when autoscaled), then the gateway's (ConfigMap, Deployment, Service, PDB,
    NetworkPolicy). `environments` give the replicas their environment's variables; `jobs` the job that registers
    a served model (its replicas come after its Job, and its content hash rolls them when it retrains); `digests`
    the sha256 a deployment's model files must have, by deployment name, where the renderer knows it; `computes`
    the spec's computes, whose scheduling an inference cluster's replicas take."""
    by_var = {e.var: e for e in environments}
    by_name = {c.name: c for c in computes}
    registering = {j.var: j for j in jobs}
    declared = declared_hash(endpoint)  # once: every object of the endpoint carries it
    objects: list[Object] = []
    for deployment in endpoint.deployments:
        objects += _replica_objects(endpoint, deployment, ctx, by_var, registering,
                                    (digests or {}).get(deployment.name),
                                    by_name.get(deployment.compute) if deployment.compute else None, declared)
    return objects + _gateway_objects(endpoint, ctx, declared)

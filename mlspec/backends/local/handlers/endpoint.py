"""Online endpoints locally: replicas of the scoring server behind the gateway, swapped without downtime."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from typing import Any

from mlspec.backends.local.capacity import node_limits
from mlspec.backends.local.context import Context, StepFailed
from mlspec.backends.local.endpoint_files import samples_folder, traffic_history
from mlspec.backends.local.gateway_control import configure
from mlspec.backends.local.handlers.endpoint_scaling import declare_scaler, forget_scaler, scaled_count, scaler_fields
from mlspec.backends.local.handlers.model_versions import recorded_digest, resolve_version
from mlspec.backends.local.handlers.scoring_code import (
    code_digest,
    forget_snapshots,
    prune_snapshots,
    scoring_arguments,
)
from mlspec.backends.local.health import wait_healthy
from mlspec.backends.local.keys import gateway_config, key_hashes, keys_file, load_keys, write_json_atomically
from mlspec.backends.local.processes import ID_VAR, free_port, port_in_use
from mlspec.backends.local.replica_sockets import control_socket, replica_socket, socket_dir
from mlspec.backends.local.state import ProcessRow
from mlspec.backends.local.supervisor_start import ensure_running, python_command
from mlspec.graph import Node
from mlspec.plan import Record
from mlspec.runtime.gateway.config import parse, routing_digest
from mlspec.runtime.jobrun import NodeLimits
from mlspec.runtime.launch import limited_argv
from mlspec.runtime.probing import LIVENESS_PATH
from mlspec.runtime.scaling import ScalingSettings
from mlspec.runtime.sockets import split_url, unix_path, with_path
from mlspec.spec import Deployment, ModelRef, OnlineEndpoint
from mlspec.spec.compute import ComputeBase


def _python(ctx: Context, node: Node, name: str) -> str:
    env_id = ctx.target(node.id, f"deployments.{name}.environment")
    return str(ctx.outputs(env_id).get("python") or sys.executable) if env_id else sys.executable


def _replicas(ctx: Context, node: Node, name: str, deployment: Deployment, version: int,
              generation: str, count: int) -> list[ProcessRow]:
    ref = ModelRef.parse(deployment.model)
    settings = deployment.request_settings
    rows = []
    digest = recorded_digest(ctx, ref.name, version)
    for index in range(count):
        # Only the gateway reaches a replica: its socket file is 0600 in an owner-only folder.
        address = "unix:" + str(replica_socket(ctx.paths, node.name, name, generation, index))
        argv = python_command(
            "mlspec.runtime.serving", "--model-uri", f"models:/{ref.name}/{version}", "--tracking-uri",
            ctx.tracking_uri, "--unix", unix_path(address), "--workers", str(deployment.workers),
            "--name", name, "--max-body-size", str(settings.max_body_size), "--request-timeout",
            str(settings.request_timeout), python=_python(ctx, node, name))
        if digest:  # the workspace's record, not the registry's tag: a rewritten mlflow.db cannot vouch for files
            argv += ["--sha256", digest]
        if deployment.batching:
            argv += ["--max-batch-size", str(deployment.batching.max_batch_size),
                     "--max-wait", str(deployment.batching.max_wait)]
        argv += scoring_arguments(ctx, node, name, deployment, generation)
        # The replica's CPU, memory and GPU share; the endpoint's replicas spread over the cores and GPUs in turn.
        argv = limited_argv(argv, _limits(ctx, node, name), _slot(node, name) + index, identity=ID_VAR)
        rows.append(ProcessRow(id=_replica_id(node, name, generation, index), owner=node.id, argv=argv,
                               env=dict(deployment.environment_variables), cwd=str(ctx.paths.proc.resolve()),
                               log=str(ctx.paths.logs / f"{node.name}-{name}-{index}.log"),
                               health=with_path(address, "/health"), policy=_policy(deployment, address)))
    return rows


def _limits(ctx: Context, node: Node, name: str) -> NodeLimits:
    """A replica's share: the deployment's own resources, else its compute's (only what the spec writes out)."""
    own = node.resource.deployments[name].resources  # type: ignore[attr-defined]
    if own is not None:
        return NodeLimits(**node_limits(own))
    compute_id = ctx.target(node.id, f"deployments.{name}.compute")
    compute = ctx.graph.spec.get(compute_id) if compute_id else None
    return NodeLimits(**node_limits(compute.resources)) if isinstance(compute, ComputeBase) else NodeLimits()


def _slot(node: Node, name: str) -> int:
    """How many replicas the endpoint's deployments before `name` run."""
    assert isinstance(node.resource, OnlineEndpoint)
    names = list(node.resource.deployments)
    return sum(_replica_count(node.resource.deployments[n]) for n in names[:names.index(name)])


def _policy(deployment: Deployment, address: str) -> dict[str, Any]:
    """The supervisor restarts a replica that fails its liveness probe (the server's live route answers as long
    as its event loop does, whatever the model's state)."""
    return {"liveness": {"url": with_path(address, LIVENESS_PATH),
                         **deployment.probes.liveness.model_dump(mode="json")}}


def _replica_count(deployment: Deployment) -> int:
    return deployment.autoscale.min_instances if deployment.autoscale else deployment.instance_count


def _replica_id(node: Node, name: str, generation: str, index: int) -> str:
    return f"{node.id}/{name}/{generation}/{index}"


def _generation(deployment: Deployment, version: int, python: str, limits: NodeLimits | None = None,
                run_id: str | None = None, code: str | None = None) -> str:
    """Replicas are replaced only when what they run changes; traffic changes never restart them. The run that made
    the version is part of it: a version number reused by a replaced MLflow store is another model."""
    what: list[Any] = [deployment.model_dump(mode="json"), version, python]
    if limits and limits != NodeLimits():  # no limits: the generation replicas started before limits existed had
        what.append(limits.model_dump(mode="json"))
    if run_id:
        what.append(run_id)
    if code:  # the scoring script's files: an edited script is a new generation
        what.append(code)
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]


def _run_id(ctx: Context, deployment: Deployment) -> str | None:
    """The run behind the version a `name`/`name@latest` reference serves, as this workspace recorded it."""
    ref = ModelRef.parse(deployment.model)
    if ref.version is not None or ref.alias not in (None, "latest"):
        return None
    run_id = ctx.outputs(f"model/{ref.name}").get("run_id")
    return str(run_id) if run_id else None


def _probe_deadline(deployment: Deployment) -> float:
    probe = deployment.probes.readiness
    return min(600.0, probe.initial_delay + probe.period * probe.failure_threshold)


def apply(ctx: Context, node: Node) -> dict[str, Any]:
    endpoint = node.resource
    if not isinstance(endpoint, OnlineEndpoint):
        from mlspec.backends.local.handlers import batch

        return batch.apply(ctx, node)
    previous = ctx.outputs(node.id)
    deployments: dict[str, Any] = {}
    scaling: dict[str, Any] = {}
    keep: set[str] = set()
    snapshots: set[str] = set()  # the scoring-script copies of the generations kept
    for name, deployment in endpoint.deployments.items():
        version = resolve_version(ctx, deployment.model, f"endpoint '{node.name}' deployment '{name}'")
        run_id = _run_id(ctx, deployment)
        generation = _generation(deployment, version, _python(ctx, node, name), _limits(ctx, node, name), run_id,
                                 code_digest(ctx, node, name))
        snapshots.add(f"{name}-{generation}")
        current = {r.id: r for r in ctx.store.processes(node.id) if r.desired}
        # An autoscaled deployment keeps the replicas its scaler added, within [min, max].
        count = scaled_count(deployment, current, node.id, name, generation)
        # Replica ids carry their generation, so replicas already declared for it are kept, whether the last `up`
        # completed or was killed after declaring them.
        expected = [_replica_id(node, name, generation, index) for index in range(count)]
        if all(pid in current for pid in expected):
            rows = [current[pid] for pid in expected]
        else:
            rows = _replicas(ctx, node, name, deployment, version, generation, count)
            for row in rows:
                ctx.store.want_process(row)
            model_name = ModelRef.parse(deployment.model).name
            ctx.say(f"starting {len(rows)} replica(s) of {node.name}/{name} (model {model_name} version {version})")
        keep.update(r.id for r in rows)
        deployments[name] = {"version": version, "run_id": run_id, "generation": generation,
                             # the scaler's replicas come and go: only fixed ones are checked for drift
                             "processes": [] if deployment.autoscale else [r.id for r in rows],
                             "replicas": [split_url(r.health)[0] for r in rows if r.health],
                             "deadline": _probe_deadline(deployment)}
        if deployment.autoscale is not None:
            scaling[name] = {"settings": ScalingSettings.of(
                deployment.autoscale, deployment.request_settings.max_concurrent_requests_per_instance),
                "generation": generation, "deadline": _probe_deadline(deployment),
                "rows": _replicas(ctx, node, name, deployment, version, generation, deployment.autoscale.max_instances)}
    ensure_running(ctx.paths)
    # Every replica the gateway will route to, kept ones too: after an interrupted `up` they may still be starting.
    wait_healthy(ctx, sorted(keep), max(d["deadline"] for d in deployments.values()),
                 max(d.probes.readiness.success_threshold for d in endpoint.deployments.values()))
    port = _gateway_port(endpoint, previous)
    config = _gateway_config(ctx, node, endpoint, deployments)
    routing = routing_digest(parse(config))
    write_json_atomically(gateway_config(ctx.paths, node.name), config)  # what a restarted gateway starts from
    control = control_socket(ctx.paths, node.name)
    gateway_id = f"{node.id}/gateway"
    keep.add(gateway_id)
    ctx.store.want_process(ProcessRow(
        id=gateway_id, owner=node.id,
        argv=python_command("mlspec.runtime.gateway", "--config", str(gateway_config(ctx.paths, node.name).resolve()),
                            "--host", "127.0.0.1", "--port", str(port), "--control", str(control),
                            "--history", str(traffic_history(ctx.paths, node.name).resolve())),
        env={}, cwd=str(ctx.paths.proc.resolve()), log=str(ctx.paths.logs / f"{node.name}-gateway.log"),
        health=f"http://127.0.0.1:{port}/health"))
    ensure_running(ctx.paths)
    wait_healthy(ctx, [gateway_id], 60)
    # Acknowledged once the gateway routes by it: only then do replicas it no longer lists stop (and drain).
    acknowledged = configure(control, config)
    if acknowledged != routing:
        raise StepFailed(f"endpoint '{node.name}': the gateway acknowledged routing {acknowledged[:12]}, not the "
                         f"{routing[:12]} it was given; see its log")
    if scaling:  # after the gateway took its config: the scaler's first reading is of the set in use
        keep.add(declare_scaler(ctx, node, control, gateway_config(ctx.paths, node.name), scaling))
    else:
        forget_scaler(ctx.paths, node.name)
    ctx.store.release_processes(node.id, keep)
    prune_snapshots(ctx, node, snapshots)
    return {"url": f"http://127.0.0.1:{port}", "port": port, "auth": endpoint.auth, "routing": routing,
            "deployments": {k: {kk: vv for kk, vv in v.items() if kk != "deadline"} for k, v in deployments.items()},
            "traffic": endpoint.effective_traffic(), "keys_file": str(keys_file(ctx.paths, node.name).resolve())}


def _gateway_port(endpoint: OnlineEndpoint, previous: dict[str, Any]) -> int:
    if endpoint.port:
        if endpoint.port != previous.get("port") and port_in_use(endpoint.port):
            raise StepFailed(f"endpoint '{endpoint.name}': port {endpoint.port} is already in use by another "
                             "program; free it or choose another port")
        return endpoint.port
    return int(previous.get("port") or free_port())


def _gateway_config(ctx: Context, node: Node, endpoint: OnlineEndpoint,
                    deployments: dict[str, Any]) -> dict[str, Any]:
    """The gateway's configuration; the digest of its routing is what a refresh compares with the file and with
    what the running gateway reports."""
    keys = load_keys(ctx.paths, node.name) if endpoint.auth == "key" else {}
    traffic = endpoint.effective_traffic()
    config = {
        "endpoint": node.name, "auth": endpoint.auth,
        "key_hashes": key_hashes(keys),
        "deployments": {name: {"weight": traffic.get(name, 0), "replicas": d["replicas"],
                               "model": {"name": ModelRef.parse(endpoint.deployments[name].model).name,
                                         "version": str(d["version"])},
                               **_gateway_limits(endpoint.deployments[name]),
                               **scaler_fields(endpoint.deployments[name])} for name, d in deployments.items()},
        "mirror": dict(endpoint.mirror_traffic),
    }
    collector = endpoint.data_collector
    if collector is not None:
        config["sampling"] = {"folder": str(samples_folder(ctx.paths, node.name).resolve()),
                              "rate": collector.sampling_rate, "max_record_size": collector.max_record_size,
                              "max_records_per_minute": collector.max_records_per_minute,
                              "retention": collector.retention}
    return config


def _gateway_limits(deployment: Deployment) -> dict[str, Any]:
    """What the gateway enforces per replica: the concurrency limit and queue, the body limit (the replicas' own,
    so that a body too large is refused before it is sent) and the readiness probe."""
    settings = deployment.request_settings
    return {"max_concurrent": settings.max_concurrent_requests_per_instance, "max_body_size": settings.max_body_size,
            "max_queue_wait": settings.max_queue_wait,
            "readiness": deployment.probes.readiness.model_dump(mode="json")}


def delete(ctx: Context, record: Record, purge: bool) -> None:
    if record.spec.get("type") == "batch":
        from mlspec.backends.local.handlers import batch

        batch.delete(ctx, record, purge)
        return
    ctx.store.release_processes(record.id)
    forget_scaler(ctx.paths, record.id.split("/", 1)[1])
    ensure_running(ctx.paths)
    # Listening sockets need no file once bound: their folder goes now (it may be outside the workspace).
    shutil.rmtree(socket_dir(ctx.paths, record.id.split("/", 1)[1]), ignore_errors=True)
    forget_snapshots(ctx, record.id.split("/", 1)[1])

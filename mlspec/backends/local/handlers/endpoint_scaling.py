"""What `up` does for autoscaled deployments: how many replicas to keep, the scaler's plan and its process."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from mlspec.backends.local.autoscaler import plan_path, status_path, write_plan
from mlspec.backends.local.context import Context
from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.state import ProcessRow
from mlspec.backends.local.supervisor_start import python_command
from mlspec.graph import Node
from mlspec.spec import Deployment


def scaled_count(deployment: Deployment, declared: dict[str, ProcessRow], owner: str, name: str,
                 generation: str) -> int:
    """Replicas to run: instance_count; with autoscale, those its scaler runs now, clamped to [min, max] (so a
    second `up` keeps what the load asked for), or min_instances for a generation not started yet."""
    scale = deployment.autoscale
    if scale is None:
        return deployment.instance_count
    prefix = f"{owner}/{name}/{generation}/"
    running = sum(process_id.startswith(prefix) for process_id in declared)
    return max(scale.min_instances, min(scale.max_instances, running or scale.min_instances))


def scaler_fields(deployment: Deployment) -> dict[str, Any]:
    """An autoscaled deployment's replica set is its scaler's (left out of the routing digest that drift checks);
    scaled to zero, the gateway holds a request until the scaler's first replica is ready (Knative's activator),
    and the count held is the scaler's signal to start one at once."""
    if deployment.autoscale is None:
        return {}
    return {"scaled": True, **({"hold": True} if deployment.autoscale.min_instances == 0 else {})}


def declare_scaler(ctx: Context, node: Node, control: Path, config_path: Path, scaling: dict[str, Any]) -> str:
    """Write the plan and declare the endpoint's scaler to the supervisor; its process id (to keep)."""
    plan = write_plan(ctx.paths, node.name, node.id, control, config_path.resolve(), scaling)
    process_id = f"{node.id}/autoscaler"
    ctx.store.want_process(ProcessRow(
        id=process_id, owner=node.id, argv=python_command("mlspec.backends.local.autoscaler", str(plan.resolve())),
        env={}, cwd=str(ctx.paths.proc.resolve()), log=str(ctx.paths.logs / f"{node.name}-autoscaler.log"),
        health=None))
    return process_id


def forget_scaler(paths: WorkspacePaths, endpoint: str) -> None:
    """No deployment autoscales (any more), or the endpoint is deleted: the plan goes; release_processes stops
    the scaler itself."""
    for path in (plan_path(paths, endpoint), status_path(paths, endpoint)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

"""Compute locally: clusters bound parallel jobs; an instance is a supervised JupyterLab."""

from __future__ import annotations

import importlib.util
import os
import secrets
import threading
from typing import Any

from mlspec.backends.local.context import Context, StepFailed
from mlspec.backends.local.handlers import instance
from mlspec.backends.local.health import wait_healthy
from mlspec.backends.local.processes import free_port
from mlspec.backends.local.state import ProcessRow
from mlspec.backends.local.supervisor_start import ensure_running, python_command
from mlspec.graph import Node
from mlspec.plan import Record
from mlspec.spec.compute import AttachedCompute, ClusterCompute, ComputeBase, InstanceCompute


def capacity(node: Node) -> int:
    """How many jobs may run on this compute at once on this machine."""
    compute = node.resource
    return compute.max_nodes if isinstance(compute, ClusterCompute) else 1


def compute_slots(ctx: Context, compute_id: str) -> threading.Semaphore:
    """The compute's free nodes in this apply: every job and pipeline step on it takes its share from here."""
    with ctx.lock:
        if compute_id not in ctx.computes:
            nodes = capacity(ctx.node(compute_id)) if compute_id in ctx.graph.nodes else 1
            ctx.computes[compute_id] = threading.Semaphore(nodes)
        return ctx.computes[compute_id]


def apply(ctx: Context, node: Node) -> dict[str, Any]:
    compute = node.resource
    assert isinstance(compute, ComputeBase)
    if isinstance(compute, AttachedCompute):
        raise StepFailed(f"compute '{compute.name}' is attached infrastructure; it needs the docker or kubernetes "
                         "target, not local")
    if compute.target not in (None, "local"):
        raise StepFailed(f"compute '{compute.name}' targets {compute.target}; the local engine runs only local "
                         f"compute (use `mlspec up --target {compute.target}`)")
    if isinstance(compute, InstanceCompute):
        return _instance(ctx, node, compute)
    return {"capacity": capacity(node)}


def _instance(ctx: Context, node: Node, compute: InstanceCompute) -> dict[str, Any]:
    if importlib.util.find_spec("jupyterlab") is None:
        raise StepFailed(f"compute instance '{compute.name}' runs JupyterLab, which is not installed: "
                         "pip install 'mlspec[notebooks]'")
    previous = ctx.outputs(node.id)
    port = compute.port or previous.get("port") or free_port()
    token = previous.get("token") or secrets.token_urlsafe(24)
    notebooks = ctx.paths.notebooks / compute.name  # workspace storage: survives deleting the instance
    notebooks.mkdir(parents=True, exist_ok=True)
    env = instance.jupyter_env(ctx, node, compute)  # the environment as the kernel; changing it restarts JupyterLab
    ctx.store.want_process(ProcessRow(
        id=f"{node.id}/jupyter", owner=node.id,
        argv=python_command("jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                            f"--ServerApp.root_dir={notebooks.resolve()}", f"--IdentityProvider.token={token}",
                            *(["--allow-root"] if os.geteuid() == 0 else [])),  # root is common in CI and containers
        env=env, cwd=str(ctx.paths.proc.resolve()), log=str(ctx.paths.logs / f"{compute.name}.log"),
        health=f"http://127.0.0.1:{port}/api",  # /api answers without the token: a liveness check
        policy=instance.idle_policy(compute, port, token)))
    ensure_running(ctx.paths)
    wait_healthy(ctx, [f"{node.id}/jupyter"], 120)
    return {"port": port, "token": token, "url": f"http://127.0.0.1:{port}/lab?token={token}",
            "notebooks": str(notebooks.resolve()), "capacity": 1,
            "kernel": env[instance.KERNEL_ENV_VAR].split(":")[0] if env else "python3"}


def delete(ctx: Context, record: Record, purge: bool) -> None:
    ctx.store.release_processes(record.id)  # notebooks stay in workspace storage

"""A compute instance's JupyterLab settings: its environment as the one kernel, and its idle shutdown policy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from mlspec.backends.local.context import Context, StepFailed
from mlspec.graph import Node
from mlspec.spec import Environment
from mlspec.spec.compute import InstanceCompute

KERNEL_ENV_VAR = "MLSPEC_KERNEL_ENVIRONMENT"  # name and content hash of the kernel's environment: a change restarts


def folder(ctx: Context, compute: InstanceCompute) -> Path:
    return ctx.paths.root / "instances" / compute.name


def jupyter_env(ctx: Context, node: Node, compute: InstanceCompute) -> dict[str, str]:
    """Variables for the JupyterLab process: with an environment, a kernelspec whose argv is that environment's
    python, offered as the only kernel (and the default), through Jupyter's own search paths."""
    env_id = ctx.target(node.id, "environment")
    if env_id is None:
        return {}  # the kernel is mlspec's own interpreter, as JupyterLab finds it
    environment = ctx.node(env_id).resource
    assert isinstance(environment, Environment)
    python = str(ctx.outputs(env_id).get("python") or "")
    if not python:
        raise StepFailed(f"compute instance '{compute.name}': environment '{environment.name}' is not built")
    _check_ipykernel(python, compute, environment)
    root = folder(ctx, compute)
    name = environment.name
    _write_json(root / "share" / "kernels" / name / "kernel.json", {
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({name})", "language": "python",
        "env": dict(environment.environment_variables),
        "metadata": {"mlspec": {"environment": name, "hash": ctx.node(env_id).hash}},
    })
    _write_json(root / "config" / "jupyter_server_config.json", {
        "KernelSpecManager": {"allowed_kernelspecs": [name], "ensure_native_kernel": False},
        "MultiKernelManager": {"default_kernel_name": name},
    })
    return {"JUPYTER_PATH": str((root / "share").resolve()), "JUPYTER_CONFIG_PATH": str((root / "config").resolve()),
            KERNEL_ENV_VAR: f"{name}:{ctx.node(env_id).hash}"}


def idle_policy(compute: InstanceCompute, port: int, token: str) -> dict[str, Any]:
    """The supervisor stops the instance once JupyterLab reports no activity (API requests, kernel messages,
    terminals) for idle_time_before_shutdown and no kernel is busy; `mlspec compute start` brings it back."""
    if compute.idle_time_before_shutdown is None:
        return {}
    return {"idle": {"url": f"http://127.0.0.1:{port}/api/status?token={token}",
                     "seconds": compute.idle_time_before_shutdown}}


def _check_ipykernel(python: str, compute: InstanceCompute, environment: Environment) -> None:
    found = subprocess.run([python, "-c", "import ipykernel"], capture_output=True, text=True)
    if found.returncode != 0:
        raise StepFailed(f"compute instance '{compute.name}': environment '{environment.name}' cannot run a "
                         "notebook kernel (ipykernel is not importable there); add ipykernel to its requirements, "
                         f"or install mlspec[notebooks], which environments see ({_last_line(found.stderr)})")


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "no output"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=1, sort_keys=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)

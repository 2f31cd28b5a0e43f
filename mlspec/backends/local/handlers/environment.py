"""Environments locally: one virtualenv per content hash, layered on mlspec's own interpreter.

The venv sees mlspec's site-packages after its own, so requirements that are already satisfied install nothing;
an environment without requirements simply uses the current interpreter.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlspec.backends.local.context import Context, StepFailed
from mlspec.graph import Node
from mlspec.plan import Record
from mlspec.spec import Environment
from mlspec.spec.conda import CondaFile


def _requirements(ctx: Context, node: Node, env: Environment) -> list[str]:
    files = ctx.graph.spec.files.get(node.id, {})
    if isinstance(env.requirements, list):
        return list(env.requirements)
    if "requirements" in files:
        return ["-r", str(files["requirements"])]
    if "conda_file" in files:
        return list(CondaFile.read(files["conda_file"]).pip)
    return []


def _layer_on_current_interpreter(venv: Path) -> None:
    """Let the venv see mlspec's packages after its own (venv's --system-site-packages would skip them
    when mlspec itself runs from a virtualenv)."""
    site_packages = next((venv / "lib").glob("python3*/site-packages"))
    (site_packages / "mlspec-base.pth").write_text("\n".join(site.getsitepackages()) + "\n")


def apply(ctx: Context, node: Node) -> dict[str, Any]:
    env = node.resource
    assert isinstance(env, Environment)
    if env.build is not None:
        raise StepFailed(f"environment '{env.name}' builds from a Dockerfile, which needs the docker target "
                         "(set the compute target to docker, or give requirements instead)")
    requirements = _requirements(ctx, node, env)
    if not requirements:
        return {"bin": None, "python": sys.executable}
    venv = ctx.paths.env(node.hash).resolve()
    python = venv / "bin" / "python"  # not resolved: the venv's python is a link to the base interpreter
    if (venv / ".complete").exists():
        return {"bin": str(venv / "bin"), "python": str(python)}
    shutil.rmtree(venv, ignore_errors=True)
    ctx.say(f"building environment {env.name} in {venv}")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    _layer_on_current_interpreter(venv)
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--disable-pip-version-check",
               "--quiet", *requirements]
    files = ctx.graph.spec.files.get(node.id, {})
    if "wheelhouse" in files:
        command[6:6] = ["--no-index", "--find-links", str(files["wheelhouse"])]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise StepFailed(f"environment '{env.name}': installing {' '.join(requirements)} failed:\n{tail}")
    (venv / ".complete").write_text(node.hash)
    return {"bin": str(venv / "bin"), "python": str(python)}


def delete(ctx: Context, record: Record, purge: bool) -> None:
    shutil.rmtree(ctx.paths.env(record.hash), ignore_errors=True)

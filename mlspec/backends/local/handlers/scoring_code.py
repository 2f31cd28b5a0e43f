"""A deployment's scoring script locally: its code folder and input schema copied per replica generation, so a
replica started later (a restart, a scale-up) runs what was deployed, not what the folder holds by then."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from mlspec.backends.local.context import Context
from mlspec.graph import Node
from mlspec.graph.digest import IGNORED_DIRS, tree_digests
from mlspec.spec import Deployment
from mlspec.spec.endpoint import SIGNATURE_SCHEMA

SCHEMA_FILE = "input-schema.json"


def _sources(ctx: Context, node: Node, name: str) -> tuple[Path | None, Path | None]:
    files = ctx.graph.spec.files.get(node.id, {})
    return (files.get(f"deployments.{name}.code_configuration.code"),
            files.get(f"deployments.{name}.input_schema"))


def code_digest(ctx: Context, node: Node, name: str) -> str | None:
    """A digest of the deployment's script folder and schema file (None: no scoring script): part of its
    replicas' generation, so an edited script starts new replicas."""
    code, schema = _sources(ctx, node, name)
    if code is None:
        return None
    files: dict[str, str] = {}
    for path in (code, schema):
        if path is not None:
            files.update(tree_digests(path, ctx.graph.spec.root))
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def _snapshot_root(ctx: Context, node: Node) -> Path:
    return ctx.paths.endpoint(node.name) / "code"


def scoring_arguments(ctx: Context, node: Node, name: str, deployment: Deployment, generation: str) -> list[str]:
    """The scoring server's --code, --scoring-script and --input-schema, on a copy made for this generation."""
    config = deployment.code_configuration
    code, schema = _sources(ctx, node, name)
    if config is None or code is None:
        return []
    target = _snapshot_root(ctx, node) / f"{name}-{generation}"
    if not target.is_dir():
        staging = target.with_name(target.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(code, staging / "code", ignore=shutil.ignore_patterns(*IGNORED_DIRS, "*.pyc"))
        if schema is not None:
            shutil.copy2(schema, staging / SCHEMA_FILE)
        staging.replace(target)  # whole or not at all: an interrupted copy is never served
    argv = ["--code", str((target / "code").resolve()), "--scoring-script", config.scoring_script]
    if deployment.input_schema == SIGNATURE_SCHEMA:
        argv += ["--input-schema", SIGNATURE_SCHEMA]
    elif deployment.input_schema is not None:
        argv += ["--input-schema", str((target / SCHEMA_FILE).resolve())]
    return argv


def prune_snapshots(ctx: Context, node: Node, kept: set[str]) -> None:
    """Remove the copies of generations no replica runs any more (`kept`: '<deployment>-<generation>')."""
    root = _snapshot_root(ctx, node)
    for folder in root.iterdir() if root.is_dir() else ():
        if folder.name not in kept:
            shutil.rmtree(folder, ignore_errors=True)


def forget_snapshots(ctx: Context, endpoint: str) -> None:
    shutil.rmtree(ctx.paths.endpoint(endpoint) / "code", ignore_errors=True)

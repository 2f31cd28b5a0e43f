"""Lineage on the local engine: what a training run is made of (recorded as run tags when the run is created), and
an endpoint's chain read back: endpoint -> deployment -> model version -> run -> code, data and environment."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mlspec.backends.local.context import Context
from mlspec.backends.local.paths import WorkspacePaths
from mlspec.graph import Node
from mlspec.graph.digest import tree_digests
from mlspec.spec import ModelRef

DATA_TAG = "mlspec.data."  # + the Data resource's name = its version (content digest), as `mlspec status` shows it
CODE_TAG = "mlspec.code"  # digest of the code folder the run snapshotted
ENVIRONMENT_TAG = "mlspec.environment"  # NAME:VERSION of the environment the command ran in
INPUT_TAG = "mlspec.input."  # + the job's input name = the Data resource it read
SHORT = 12  # a version's digits, as a Data resource's version is shown


def run_lineage_tags(ctx: Context, node: Node, code_field: str, environment_id: str | None) -> dict[str, str]:
    """Tags of a job's run naming the data versions it read, its code digest and its environment's version."""
    tags: dict[str, str] = {}
    for name in node.resource.inputs:  # type: ignore[attr-defined]
        target = ctx.target(node.id, f"inputs.{name}")
        if target and target.startswith("data/"):
            data = ctx.node(target)
            tags[DATA_TAG + data.name] = data.hash[:SHORT]
            tags[INPUT_TAG + name] = data.name
    code = ctx.graph.spec.files.get(node.id, {}).get(code_field)
    if code is not None:
        files = tree_digests(code, ctx.graph.spec.root)  # cached by the graph's hashing: no second read
        tags[CODE_TAG] = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:SHORT]
    if environment_id:
        environment = ctx.node(environment_id)
        tags[ENVIRONMENT_TAG] = f"{environment.name}:{environment.hash[:SHORT]}"
    return tags


def data_snapshot(paths: WorkspacePaths, name: str, version: str) -> Path | None:
    """The file or folder of a Data resource's version in the workspace's datastore; None when it is gone."""
    for folder in sorted((paths.root / "datastore" / name).glob(f"{version}*")):
        found = [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.is_dir() else []
        if len(found) == 1:
            return found[0]
    return None


def endpoint_lineage(paths: WorkspacePaths, client: Any, name: str, outputs: dict[str, Any],
                     deployments: dict[str, str]) -> dict[str, Any]:
    """The chain behind each deployment of a deployed endpoint (`outputs`: its record's; `deployments`: each one's
    model reference as declared)."""
    from mlflow.exceptions import MlflowException

    from mlspec.runtime.serving.integrity import TAG

    traffic = outputs.get("traffic", {})
    shown: dict[str, Any] = {}
    for deployment, served in outputs.get("deployments", {}).items():
        model = ModelRef.parse(deployments.get(deployment, "?")).name
        entry: dict[str, Any] = {"traffic": traffic.get(deployment, 0),
                                 "model": {"name": model, "version": served.get("version")}}
        try:
            version = client.get_model_version(model, str(served.get("version")))
            run_id = served.get("run_id") or version.run_id
            entry["model"]["sha256"] = version.tags.get(TAG)
            run = client.get_run(run_id) if run_id else None
        except MlflowException as error:
            entry["error"] = f"the registry does not answer for {model} version {served.get('version')}: {error}"
            shown[deployment] = entry
            continue
        if run is not None:
            tags = run.data.tags
            entry["run"] = {"id": run.info.run_id, "job": tags.get("mlspec.job"),
                            "experiment": _experiment(client, run.info.experiment_id),
                            "job_hash": tags.get("mlspec.hash"),
                            "code": tags.get(CODE_TAG), "environment": tags.get(ENVIRONMENT_TAG),
                            "data": {k[len(DATA_TAG):]: v for k, v in sorted(tags.items()) if k.startswith(DATA_TAG)},
                            "inputs": {k[len(INPUT_TAG):]: v for k, v in sorted(tags.items())
                                       if k.startswith(INPUT_TAG)}}
        shown[deployment] = entry
    return {"endpoint": name, "url": outputs.get("url"), "deployments": shown}


def _experiment(client: Any, experiment_id: str) -> str:
    found = client.get_experiment(experiment_id)
    return str(found.name) if found is not None else experiment_id

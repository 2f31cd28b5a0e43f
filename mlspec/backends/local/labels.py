"""A resource's tags and description, applied in place to what it made in MLflow and recorded with its outputs."""

from __future__ import annotations

from typing import Any

from mlspec.backends.local.context import Context
from mlspec.graph import Node
from mlspec.plan.labels import desired_labels


def apply_labels(ctx: Context, node: Node, outputs: dict[str, Any], applied: dict[str, Any]) -> dict[str, Any]:
    """Label the runs, experiment and registered model the step made (`outputs`), given the labels an earlier
    apply recorded; returns the labels to record (`outputs["labels"]`, which the planner compares with the
    spec's). Kinds with nothing in MLflow only record them."""
    desired = desired_labels(node, ctx.graph.spec.workspace)
    if node.kind not in ("Job", "Model") or (not desired and not applied):
        return desired
    from mlspec.runtime import labels

    own_tags, description = desired.get("tags", {}), desired.get("description", "")
    workspace = desired.get("workspace", {})
    uri = ctx.tracking_uri
    resource: Any = node.resource
    if node.kind == "Job":
        labels.label_job_runs(uri, resource.name, node.hash, own_tags, description)
        experiment = resource.experiment_name or ctx.graph.spec.workspace.name
    else:
        version = outputs.get("version")
        labels.label_model(uri, resource.name, own_tags, description, [int(version)] if version else [])
        experiment = "mlspec-models" if resource.path else None  # where a model from a path is logged
    if experiment and (workspace or applied.get("workspace")):  # set, or set before and now to be cleared
        labels.label_experiment(uri, experiment, workspace.get("tags", {}), workspace.get("description", ""))
    return desired

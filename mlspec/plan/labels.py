"""Labels (tags and description) as the plan sees them: applied in place, so a change to them alone relabels."""

from __future__ import annotations

from typing import Any

from mlspec.graph import Node
from mlspec.plan.diff import field_changes
from mlspec.spec import Resource, Workspace

RELABEL = "relabel"  # the verb of an update that changes labels only: nothing is retrained or restarted


def own_labels(resource: Resource) -> dict[str, Any]:
    """{"tags": ..., "description": ...}, each only when set."""
    out: dict[str, Any] = {}
    if resource.tags:
        out["tags"] = dict(sorted(resource.tags.items()))
    if resource.description:
        out["description"] = resource.description
    return out


def desired_labels(node: Node, workspace: Workspace) -> dict[str, Any]:
    """What applying `node` labels: its own labels, and the workspace's on the MLflow experiment it creates
    (a job's runs, a model registered from a path)."""
    out = own_labels(node.resource)
    creates_experiment = node.kind == "Job" or (node.kind == "Model" and getattr(node.resource, "path", None))
    workspace_labels = own_labels(workspace) if creates_experiment else {}
    if workspace_labels:
        out["workspace"] = workspace_labels
    return out


def label_changes(applied: dict[str, Any], desired: dict[str, Any]) -> list[str]:
    """'tags changed (team: ml → research)', 'description changed', 'workspace tags changed'."""
    reasons: list[str] = []
    for prefix, before, after in (("", applied, desired),
                                  ("workspace ", applied.get("workspace", {}), desired.get("workspace", {}))):
        tags = field_changes(before.get("tags", {}), after.get("tags", {}))
        if tags:
            reasons.append(f"{prefix}tags changed ({', '.join(tags)})")
        if before.get("description", "") != after.get("description", ""):
            reasons.append(f"{prefix}description changed")
    return reasons

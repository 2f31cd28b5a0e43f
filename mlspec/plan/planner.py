"""Plan stage: the desired graph against recorded state gives one change per resource, with reasons."""

from __future__ import annotations

import json
from typing import Any

from mlspec.graph import Graph, Node
from mlspec.plan.diff import field_changes, file_changes
from mlspec.plan.labels import RELABEL, desired_labels, label_changes
from mlspec.plan.model import Action, Change, Plan, Record

# The kind's word for an update, as users say it.
VERBS = {"Job": "retrain", "Model": "register", "Endpoint": "redeploy", "Environment": "rebuild",
         "Data": "new version", "Compute": "reconfigure"}
# Fields whose change means the old thing is torn down before the new one exists.
REPLACE_FIELDS = {"Compute": ("type", "target"), "Environment": ("image", "python", "build")}


def spec_of(node: Node) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(node.spec)
    return value


def plan(graph: Graph, state: dict[str, Record]) -> Plan:
    changes: list[Change] = []
    for node in graph.nodes.values():
        changes.append(_change(node, state.get(node.id), graph, state))
    gone = [rid for rid in state if rid not in graph.nodes]
    for rid in _dependants_first(gone, state):
        record = state[rid]
        changes.append(Change(rid, record.kind, "delete", ("no longer in the spec",)))
    return Plan(changes)


def _change(node: Node, record: Record | None, graph: Graph, state: dict[str, Record]) -> Change:
    verb = VERBS.get(node.kind, "update")
    if node.kind == "Endpoint" and getattr(node.resource, "type", None) == "batch":
        verb = "rescore"  # a batch endpoint is a scoring run, not a server
    if record is None:
        return Change(node.id, node.kind, "create", _create_reasons(node), verb)
    if record.hash == node.hash and record.status == "ready":
        relabel = label_changes(record.outputs.get("labels", {}), desired_labels(node, graph.spec.workspace))
        return Change(node.id, node.kind, "update", tuple(relabel), RELABEL) if relabel else \
            Change(node.id, node.kind, "noop")
    if record.hash == node.hash:
        return Change(node.id, node.kind, "update", (f"previous apply did not finish ({record.status})",), verb)
    spec = spec_of(node)
    reasons = field_changes(record.spec, spec) + file_changes(record.files, node.files)
    for upstream in node.deps:
        before = record.upstream.get(upstream)
        if before is not None and before != graph.nodes[upstream].hash:
            reasons.append(_upstream_reason(upstream, graph, state))
    action: Action = "update"
    if any(record.spec.get(f) != spec.get(f) for f in REPLACE_FIELDS.get(node.kind, ())):
        action = "replace"
    return Change(node.id, node.kind, action, tuple(reasons) or ("definition changed",), verb)


def _create_reasons(node: Node) -> tuple[str, ...]:
    resource: Any = node.resource
    if node.kind == "Model" and resource.job:
        return (f"register from job/{resource.job}",)
    if node.kind == "Job":
        return ("train",)
    if node.kind == "Endpoint" and getattr(resource, "type", None) == "batch":
        return (f"score {resource.input} with {resource.model}",)
    return ()


def _upstream_reason(upstream: str, graph: Graph, state: dict[str, Record]) -> str:
    kind = graph.nodes[upstream].kind
    if kind == "Model":
        current = state.get(upstream)
        version = current.outputs.get("version") if current else None
        name = upstream.split("/", 1)[1]
        return f"{name} {version} → {version + 1}" if isinstance(version, int) else f"new version of {name}"
    if kind == "Job":
        return f"{upstream} retrains"
    return f"{upstream} changed"


def _dependants_first(ids: list[str], state: dict[str, Record]) -> list[str]:
    """Deletion order: whatever depends on a resource goes before it."""
    remaining = set(ids)
    order: list[str] = []
    while remaining:
        leaves = sorted(r for r in remaining if not any(r in state[o].upstream for o in remaining if o != r))
        if not leaves:  # a recorded cycle cannot happen, but never loop forever
            leaves = sorted(remaining)
        order.extend(leaves)
        remaining -= set(leaves)
    return order

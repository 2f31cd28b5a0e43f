"""Plan stage: the desired graph against recorded state gives one change per resource, with reasons."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from mlspec.graph import Graph, Node
from mlspec.plan.diff import field_changes, file_changes
from mlspec.plan.labels import RELABEL, desired_labels, label_changes
from mlspec.plan.model import Action, Change, Drift, Plan, Record
from mlspec.plan.models import model_change, reference_blockers
from mlspec.plan.pipelines import pipeline_create_reasons, pipeline_reasons
from mlspec.plan.registry import RegistryView
from mlspec.plan.schedules import RESCHEDULE, desired_schedule, schedule_changes
from mlspec.plan.traffic import SHIFT_TRAFFIC, TRAFFIC_REASONS, fold_traffic
from mlspec.spec.pipeline import PipelineJob

# The kind's word for an update, as users say it.
VERBS = {"Job": "retrain", "Model": "register", "Endpoint": "redeploy", "Environment": "rebuild",
         "Data": "new version", "Compute": "reconfigure"}
# Fields whose change means the old thing is torn down before the new one exists.
REPLACE_FIELDS = {"Compute": ("type", "target"), "Environment": ("image", "python", "build")}


def spec_of(node: Node) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(node.spec)
    return value


# Kinds whose repair makes something new (a run, a version) that what depends on them must follow.
_FOLLOWED = ("Job", "Model")


def plan(graph: Graph, state: dict[str, Record], registry: RegistryView | None = None,
         drift: Mapping[str, Sequence[Drift]] | None = None) -> Plan:
    """The changes applying `graph` makes to `state`; with a read of the `registry`, model versions are numbered
    as the registry will number them, and references to aliases it lacks block the plan. `drift`: what a refresh
    found really differs from `state`, per resource; each becomes a change with its reason, and a re-run job or
    re-registered model carries its dependants along."""
    drift = drift or {}
    changes: dict[str, Change] = {}
    for node in graph.nodes.values():  # topological: a model's job is planned before the model
        change = _change(node, state.get(node.id), graph, state, changes)
        found = list(drift.get(node.id, ()))
        if change.action == "noop" and not found:
            found = [Drift(f"follows {up} ({changes[up].reasons[0]})") for up in node.deps
                     if up in changes and changes[up].drifted and changes[up].kind in _FOLLOWED
                     and changes[up].action != "noop"]
        change = _with_drift(change, found, _verb(node))
        if node.kind == "Model":
            change = model_change(node, change, state.get(node.id), changes, graph, registry)
        changes[node.id] = change
    gone = [rid for rid in state if rid not in graph.nodes]
    deletes = [Change(rid, state[rid].kind, "delete", ("no longer in the spec",))
               for rid in _dependants_first(gone, state)]
    return Plan([*changes.values(), *deletes], reference_blockers(graph, registry, changes))


def _verb(node: Node) -> str:
    if node.kind == "Endpoint" and getattr(node.resource, "type", None) == "batch":
        return "rescore"  # a batch endpoint is a scoring run, not a server
    if isinstance(node.resource, PipelineJob):
        return "run steps"  # only the steps whose content or inputs changed; the reasons name them
    return VERBS.get(node.kind, "update")


def _change(node: Node, record: Record | None, graph: Graph, state: dict[str, Record],
            planned: dict[str, Change]) -> Change:
    verb = _verb(node)
    if record is None:
        created = pipeline_create_reasons(graph, node) if isinstance(node.resource, PipelineJob) else \
            _create_reasons(node)
        return Change(node.id, node.kind, "create", created, verb)
    if record.hash == node.hash and record.status == "ready":
        relabel = label_changes(record.outputs.get("labels", {}), desired_labels(node, graph.spec.workspace))
        rearm = schedule_changes(record.outputs.get("schedule"), desired_schedule(node))
        if rearm:
            return Change(node.id, node.kind, "update", tuple(rearm + relabel), RESCHEDULE)
        return Change(node.id, node.kind, "update", tuple(relabel), RELABEL) if relabel else \
            Change(node.id, node.kind, "noop")
    if record.hash == node.hash:
        unfinished: tuple[str, ...] = (f"previous apply did not finish ({record.status})",)
        if isinstance(node.resource, PipelineJob) and record.outputs.get("steps"):
            unfinished = tuple(pipeline_reasons(graph, node, record))  # which steps finished, which run again
        return Change(node.id, node.kind, "update", unfinished, verb)
    spec = spec_of(node)
    reasons = pipeline_reasons(graph, node, record) if isinstance(node.resource, PipelineJob) else \
        field_changes(record.spec, spec) + file_changes(record.files, node.files)
    if node.kind == "Endpoint":
        reasons = fold_traffic(record.spec, spec, reasons)
    for upstream in node.deps:
        before = record.upstream.get(upstream)
        if before is not None and before != graph.nodes[upstream].hash:
            reasons.append(_upstream_reason(upstream, graph, state, planned))
    action: Action = "update"
    if any(record.spec.get(f) != spec.get(f) for f in REPLACE_FIELDS.get(node.kind, ())):
        action = "replace"
    if reasons and all(r.startswith(TRAFFIC_REASONS) for r in reasons):
        verb = SHIFT_TRAFFIC  # the gateway's split changes; no replica restarts
    return Change(node.id, node.kind, action, tuple(reasons) or ("definition changed",), verb)


def _with_drift(change: Change, found: list[Drift], kind_verb: str) -> Change:
    if not found or change.action == "create":
        return change
    reasons = tuple(d.reason for d in found)
    if change.action == "noop":
        action: Action = "create" if any(d.recreate for d in found) else "update"
        verb = next((d.verb for d in found if d.verb), kind_verb)
        return replace(change, action=action, reasons=reasons, verb=verb, drifted=True)
    return replace(change, reasons=change.reasons + reasons, drifted=True)


def _create_reasons(node: Node) -> tuple[str, ...]:
    resource: Any = node.resource
    if node.kind == "Model" and resource.job:
        return (f"register from job/{resource.job}",)
    if node.kind == "Job":
        return ("train",)
    if node.kind == "Endpoint" and getattr(resource, "type", None) == "batch":
        return (f"score {resource.input} with {resource.model}",)
    return ()


def _upstream_reason(upstream: str, graph: Graph, state: dict[str, Record], planned: dict[str, Change]) -> str:
    kind = graph.nodes[upstream].kind
    if kind == "Model":
        current = state.get(upstream)
        version = current.outputs.get("version") if current else None
        name = upstream.split("/", 1)[1]
        change = planned.get(upstream)
        after = change.version if change and change.version is not None else None
        if isinstance(version, int) and after is None:
            after = version + 1
        if isinstance(version, int) and after is not None:
            return f"{name} {version} → {after}" if after != version else f"{name} {version} (unchanged version)"
        return f"new version of {name}"
    if kind == "Job":
        return f"{upstream} runs steps" if isinstance(graph.nodes[upstream].resource, PipelineJob) else \
            f"{upstream} retrains"
    change = planned.get(upstream)
    why = f" ({change.reasons[0]})" if change and change.reasons else ""
    if kind == "Data":
        return f"new version of {upstream}{why}"
    if kind == "Environment":
        return f"{upstream} rebuilds{why}"
    return f"{upstream} changed{why}"


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

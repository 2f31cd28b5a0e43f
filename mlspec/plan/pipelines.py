"""A pipeline's plan in its steps' terms: which steps re-run and why (a file of that step, an upstream that re-runs)."""

from __future__ import annotations

import json

from mlspec.graph import Graph, Node
from mlspec.graph.steps import pipeline_steps
from mlspec.plan.diff import field_changes, file_changes
from mlspec.plan.model import Record
from mlspec.spec.pipeline import AnyStep, PipelineJob, StepInput, parse_binding

_FINISHED = ("succeeded", "reused")
_RERUN = "re-run "


def rerun_steps(reasons: tuple[str, ...]) -> set[str]:
    """The steps a pipeline's planned reasons re-run (the others are reused)."""
    return {r[len(_RERUN):].split(":", 1)[0] for r in reasons if r.startswith(_RERUN)}


def writer_of(pipeline: PipelineJob, output: str) -> str | None:
    """The step that writes pipeline output `output`."""
    for name, step in pipeline.jobs.items():
        for value in step.outputs.values():
            bound = parse_binding(value) if isinstance(value, str) else None
            if bound is not None and bound.scope == "outputs" and bound.name == output:
                return name
    return None


def pipeline_create_reasons(graph: Graph, node: Node) -> tuple[str, ...]:
    return (f"run steps {', '.join(pipeline_steps(graph, node.id))}",)


def pipeline_reasons(graph: Graph, node: Node, record: Record) -> list[str]:
    """One reason per step that re-runs, then the steps reused as they are."""
    steps = pipeline_steps(graph, node.id)
    before = record.outputs.get("steps", {})
    old_jobs = record.spec.get("jobs", {})
    rerun: dict[str, str] = {}
    for name, step in steps.items():
        prior = before.get(name) or {}
        if name not in old_jobs:
            rerun[name] = "new step"
        elif prior.get("status") not in _FINISHED:
            rerun[name] = "it did not finish last time" if prior else "no finished run recorded"
        elif prior.get("static") != step.hash:
            previous = {f: d for f, d in record.files.items() if f in step.files}
            files = file_changes(previous, step.files)
            fields = field_changes(old_jobs.get(name, {}), step.spec) + _bound_inputs(record, node, step.step)
            if files:
                rerun[name] = files[0].replace("files changed", f"files changed in step {name}", 1)
            elif fields:
                rerun[name] = f"step {name}: " + ", ".join(fields)
            else:
                rerun[name] = f"step {name}'s environment, compute, inputs or registered model changed"
        else:
            upstream = next((d for d in step.deps if d in rerun), None)
            if upstream is not None:
                rerun[name] = f"upstream {upstream} re-runs"
    reasons = [f"{_RERUN}{name}: {why}" for name, why in rerun.items()]
    reused = [name for name in steps if name not in rerun]
    if reused:
        reasons.append(f"reuse {', '.join(reused)} (unchanged)")
    return reasons


def _bound_inputs(record: Record, node: Node, step: AnyStep) -> list[str]:
    """Changes of the pipeline inputs a step reads: 'pipeline inputs.rows: 24 → 48'."""
    names = {b.name for v in step.inputs.values()
             if (b := parse_binding(v.path if isinstance(v, StepInput) else v)) and b.scope == "inputs"}
    before = {k: v for k, v in record.spec.get("inputs", {}).items() if k in names}
    after = {k: v for k, v in json.loads(node.spec).get("inputs", {}).items() if k in names}
    return [f"pipeline {change}" for change in field_changes({"inputs": before}, {"inputs": after})]

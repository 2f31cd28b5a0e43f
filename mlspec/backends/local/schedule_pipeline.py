"""A scheduled pipeline: what `up` arms (its resolved steps) and what each of its runs runs.

A run re-runs the steps `up` resolved, in the pipeline's own step cache (`runs/<pipeline>/steps/`), so a step whose
inputs are unchanged is reused; a step reading a Data resource reads a fresh copy of the Data's source, and when its
rows differ from what `up` read, that step (and every step reading its outputs) runs again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlspec.backends.local.context import Context
from mlspec.backends.local.fire import Outcome, run_marks, snapshot_source
from mlspec.backends.local.schedule_arm import data_sources
from mlspec.backends.local.state import StateStore
from mlspec.graph import Node
from mlspec.runtime.jobrun import InputBinding
from mlspec.runtime.pipeline import cache
from mlspec.runtime.pipeline.contract import PipelineRun, StepRun
from mlspec.spec.pipeline import PipelineJob, StepInput, parse_binding
from mlspec.spec.schedule import SCHEDULED_TAG


@dataclass(frozen=True)
class StepModel:
    """A model version a step registered (or a reused step had registered), as a scheduled run reports it."""

    name: str
    version: int
    sha256: str
    run_id: str | None
    reused: bool


def _data_inputs(ctx: Context, node: Node, pipeline: PipelineJob) -> dict[str, str]:
    """{"STEP.INPUT": the field that names a Data resource} for every step input that reads one, directly or as
    one of the pipeline's inputs."""
    fields: dict[str, str] = {}
    for name, step in pipeline.jobs.items():
        for input_name, value in step.inputs.items():
            bound = parse_binding(value.path if isinstance(value, StepInput) else value)
            if bound is None:
                fields[f"{name}.{input_name}"] = f"jobs.{name}.inputs.{input_name}"
            elif bound.scope == "inputs":
                fields[f"{name}.{input_name}"] = f"inputs.{bound.name}"
    return fields


def pipeline_launch(ctx: Context, node: Node) -> dict[str, Any]:
    """What a scheduled run of the pipeline runs, as JSON: its steps as `up` resolved them, and for each step input
    that reads a Data resource, the Data's source and the digest of the rows `up` read."""
    from mlspec.backends.local.handlers.pipeline import pipeline_plan

    pipeline = node.resource
    assert isinstance(pipeline, PipelineJob)
    plan = pipeline_plan(ctx, node)
    fields = _data_inputs(ctx, node, pipeline)
    sources = data_sources(ctx, node, fields)
    reads: dict[str, dict[str, Any]] = {}
    for key, source in sources.items():
        step, input_name = key.split(".", 1)
        armed = next(s for s in plan.steps if s.name == step).template.inputs[input_name].path
        reads[key] = {"source": source, "digest": cache.output_digest(armed) if armed else None}
    return {"kind": "pipeline", "plan": plan.model_dump(mode="json"), "reads": reads}


def _marked(step: StepRun, env: dict[str, str], tags: dict[str, str]) -> StepRun:
    """The step run with the schedule's process marks and run tags."""
    template = step.template.model_copy(update={"env": {**step.template.env, **env}, "tags": {**step.template.tags,
                                                                                              **tags}})
    return step.model_copy(update={"template": template})


def _fresh(step: StepRun, reads: dict[str, dict[str, Any]], copies: dict[str, tuple[str, str]],
           folder: Path) -> StepRun:
    """The step reading fresh copies of its Data inputs; its hash moves with each one whose rows changed, so it
    runs again instead of being reused."""
    inputs = dict(step.template.inputs)
    changed: dict[str, str] = {}
    for key, read in reads.items():
        name, input_name = key.split(".", 1)
        if name != step.name:
            continue
        source = read["source"]
        if source not in copies:  # one copy per source, however many steps read it
            copy = snapshot_source(source, folder / "data" / str(len(copies)))
            copies[source] = (copy, cache.output_digest(copy))
        path, digest = copies[source]
        inputs[input_name] = InputBinding(path=path)
        if digest != read["digest"]:
            changed[f"data.{input_name}"] = digest
    static = cache.run_hash(step.static_hash, changed) if changed else step.static_hash
    return step.model_copy(update={"template": step.template.model_copy(update={"inputs": inputs}),
                                   "static_hash": static})


def fire_pipeline(launch: dict[str, Any], folder: Path, resource_id: str, run: int, workspace: str,
                  store: StateStore, stop: threading.Event) -> Outcome:
    from mlspec.runtime.pipeline.runner import run_pipeline

    armed = PipelineRun.model_validate(launch["plan"])
    tags = {SCHEDULED_TAG: "true", "mlspec.schedule.run": str(run)}
    marks = run_marks(resource_id, workspace)
    copies: dict[str, tuple[str, str]] = {}
    steps = [_fresh(_marked(s, marks, tags), launch["reads"], copies, folder) for s in armed.steps]
    plan = armed.model_copy(update={"steps": steps, "tags": {**armed.tags, **tags}})
    result = run_pipeline(plan, on_line=print, stop=stop)
    models = [StepModel(m["name"], int(m["version"]), m["sha256"], m.get("run_id"),
                        bool(m.get("reused")) or step.status == "reused")
              for step in result.steps.values() for m in step.models]
    return result.status, result.run_id, result.error, models

"""Arming a resource's schedule during `mlspec up`: what each of its runs will run, written to the state.

A run re-runs what `up` ran, with the code and environment `up` resolved, but reads each Data input from its
source path as it is when the run starts (new rows since the last run), not the snapshot `up` took.
"""

from __future__ import annotations

import time
from typing import Any

from mlspec.backends.local.context import Context
from mlspec.backends.local.processes import workspace_processes
from mlspec.backends.local.schedule_state import arm, disarm, run_id_of
from mlspec.graph import Node
from mlspec.plan.schedules import desired_schedule
from mlspec.spec import BatchEndpoint
from mlspec.spec.automl import AutoMLJob
from mlspec.spec.pipeline import PipelineJob
from mlspec.spec.sweep import JOB_MODELS, SweepJob


def data_sources(ctx: Context, node: Node, fields: dict[str, str]) -> dict[str, str]:
    """{name: the Data's source path} for each field that references a Data resource."""
    out: dict[str, str] = {}
    for name, field in fields.items():
        target = ctx.target(node.id, field)
        if target and target.startswith("data/"):
            source = ctx.graph.spec.files.get(target, {}).get("path")
            if source is not None:
                out[name] = str(source.resolve())
    return out


def launch_of(ctx: Context, node: Node) -> dict[str, Any]:
    """What a scheduled run of `node` runs, as JSON."""
    resource = node.resource
    if isinstance(resource, BatchEndpoint):
        from mlspec.backends.local.handlers.batch import scoring_run

        run, process, python = scoring_run(ctx, node)
        return {"kind": "batch", "run": run.model_dump(mode="json"), "process": process.model_dump(mode="json"),
                "python": python, "model": resource.model,
                "sources": data_sources(ctx, node, {"input": "input"})}
    if isinstance(resource, PipelineJob):
        from mlspec.backends.local.schedule_pipeline import pipeline_launch

        return pipeline_launch(ctx, node)
    if isinstance(resource, AutoMLJob):
        from mlspec.backends.local.schedule_automl import automl_launch

        return automl_launch(ctx, node)
    assert isinstance(resource, JOB_MODELS)
    from mlspec.backends.local.handlers.job import job_run

    run = job_run(ctx, node, fresh=False)  # the run `up` just made keeps its folder
    launch = {"kind": "sweep" if isinstance(resource, SweepJob) else "job", "run": run.model_dump(mode="json"),
              "sources": data_sources(ctx, node, {name: f"inputs.{name}" for name in resource.inputs})}
    if isinstance(resource, SweepJob):
        launch["sweep"] = resource.model_dump(mode="json")
    return launch


def rearm(ctx: Context, node: Node) -> dict[str, Any] | None:
    """Arm the node's schedule (or disarm it when the spec has none); the schedule to record in its outputs."""
    schedule = desired_schedule(node)
    with ctx.lock:
        if schedule is None:
            disarm(ctx.store, node.id)
            return None
    launch = launch_of(ctx, node)
    with ctx.lock:
        arm(ctx.store, node.id, schedule, launch, time.time())
    return schedule


def wait_for_scheduled_run(ctx: Context, node: Node) -> None:
    """One run of a resource at a time: a scheduled run still going finishes before `up` runs the resource again
    (no scheduled run starts while `up` holds the workspace lock)."""
    process_id, said = run_id_of(node.id), False
    while not ctx.stop.is_set():
        if process_id not in workspace_processes(str(ctx.paths.root.resolve())).values():
            return
        if not said:
            ctx.say(f"  {node.id}: waiting for its scheduled run to finish first")
            said = True
        time.sleep(0.5)

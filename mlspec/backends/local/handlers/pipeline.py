"""Pipelines locally: each step resolved to a run template, the steps run (or reused) under `runs/<pipeline>/`."""

from __future__ import annotations

from typing import Any

from mlspec.backends.local.capacity import node_limits
from mlspec.backends.local.context import Context, StepFailed
from mlspec.backends.local.handlers.compute import capacity, compute_slots
from mlspec.backends.local.handlers.model_versions import record_registered
from mlspec.backends.local.processes import interpreter_bin, up_process_env
from mlspec.graph import Node
from mlspec.graph.steps import StepNode, pipeline_steps
from mlspec.runtime.jobrun import InputBinding, JobRun, OutputBinding
from mlspec.runtime.labels import label_tags
from mlspec.runtime.pipeline.contract import PipelineRun, StepRun, output_binding, sweep_of_step
from mlspec.spec import Model
from mlspec.spec.compute import ComputeBase
from mlspec.spec.job import Output
from mlspec.spec.pipeline import PipelineJob, StepInput, SweepStep, parse_binding, step_field, step_runs


def _value(ctx: Context, node: Node, path: str, value: object) -> InputBinding:
    """A literal, a Data or model reference, or a path input, as the step receives it."""
    target = ctx.target(node.id, path)
    if target and target.startswith("data/"):
        return InputBinding(path=ctx.outputs(target)["path"])
    if target and target.startswith("model/") and isinstance(value, str):
        return InputBinding(value=f"models:/{value.split(':', 1)[1]}")
    if isinstance(value, StepInput):
        return InputBinding(path=str(ctx.graph.spec.files[node.id][path].resolve()))
    assert isinstance(value, (bool, int, float, str))
    return InputBinding(value=value)


def _inputs(ctx: Context, node: Node, pipeline: PipelineJob, name: str, step: StepNode
            ) -> tuple[dict[str, InputBinding], dict[str, tuple[str, str]]]:
    given: dict[str, InputBinding] = {}
    reads: dict[str, tuple[str, str]] = {}
    for input_name, value in step.step.inputs.items():
        bound = parse_binding(value.path if isinstance(value, StepInput) else value)
        if bound is not None and bound.scope == "step":
            reads[input_name] = (bound.step, bound.name)
        elif bound is not None:  # the pipeline's own input
            given[input_name] = _value(ctx, node, f"inputs.{bound.name}", pipeline.inputs[bound.name])
        else:
            given[input_name] = _value(ctx, node, f"jobs.{name}.inputs.{input_name}", value)
    return given, reads


def _outputs(ctx: Context, pipeline: PipelineJob, step: StepNode, workdir: str) -> dict[str, OutputBinding]:
    out: dict[str, OutputBinding] = {}
    for name, declared in step.step.outputs.items():
        output = declared if isinstance(declared, Output) else pipeline.outputs[parse_binding(declared).name]  # type: ignore[union-attr]
        model = ctx.graph.nodes.get(f"model/{output.register_as}") if output.register_as else None
        resource = model.resource if model is not None else None
        out[name] = output_binding(output, resource if isinstance(resource, Model) else None,
                                   f"{workdir}/outputs/{name}")
    return out


def _step_plan(ctx: Context, node: Node, pipeline: PipelineJob, step: StepNode, folder: str) -> StepRun:
    name, spec = step.name, step.step
    runs = step_runs(spec)
    prefix = f"jobs.{name}"
    env_id = ctx.target(node.id, f"{prefix}.{step_field(spec, 'environment')}")
    env_vars = dict(runs.environment_variables)
    if env_id:
        env_vars = {**ctx.node(env_id).resource.environment_variables, **env_vars}  # type: ignore[attr-defined]
    env_vars.update(up_process_env(str(ctx.paths.root.resolve()), node.id))  # stopped with this `up`, as jobs are
    bin_folder = (ctx.outputs(env_id) if env_id else {}).get("bin") or interpreter_bin(ctx.paths.interpreters.resolve())
    compute_id = ctx.target(node.id, f"{prefix}.compute") or "compute/local"
    compute = ctx.graph.spec.resources[compute_id].resource if compute_id in ctx.graph.spec.resources else None
    code = ctx.graph.spec.files.get(node.id, {}).get(f"{prefix}.{step_field(spec, 'code')}")
    inputs, reads = _inputs(ctx, node, pipeline, name, step)
    workdir = f"{folder}/steps/{name}/pending"
    template = JobRun(
        job=f"{pipeline.name}.{name}", experiment=pipeline.experiment_name or ctx.graph.spec.workspace.name,
        tracking_uri=ctx.tracking_uri, artifact_location=str(ctx.paths.artifacts.resolve()), command=runs.command,
        code=str(code.resolve()) if code else None, workdir=workdir, inputs=inputs,
        outputs=_outputs(ctx, pipeline, step, workdir), env=env_vars, path_prefix=bin_folder,
        timeout=None if isinstance(spec, SweepStep) else spec.timeout,
        retries=0 if isinstance(spec, SweepStep) else spec.retries, log_file=f"{workdir}/job.log",
        tags={**label_tags(pipeline.tags, pipeline.description), "mlspec.workspace": ctx.graph.spec.workspace.name},
        content_hash=step.hash, limits=node_limits(compute.resources) if isinstance(compute, ComputeBase) else {})
    sweep = sweep_of_step(name, spec, template) if isinstance(spec, SweepStep) else None
    return StepRun(name=name, template=template, static_hash=step.hash, deps=list(step.deps), reads=reads,
                   compute=compute_id, sweep=sweep)


class _SharedSlots:
    """A compute's nodes as the engine counts them for every job of this apply: a step takes its share at once or
    waits, so a pipeline and a job on one cluster never run more than its max_nodes together."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def take(self, compute: str, count: int) -> bool:
        slots = compute_slots(self.ctx, compute)
        taken = 0
        while taken < count and slots.acquire(blocking=False):
            taken += 1
        if taken == count:
            return True
        for _ in range(taken):  # all or none: a step holding some nodes would starve the others
            slots.release()
        return False

    def give(self, compute: str, count: int) -> None:
        slots = compute_slots(self.ctx, compute)
        for _ in range(count):
            slots.release()


def pipeline_plan(ctx: Context, node: Node) -> PipelineRun:
    """The pipeline's steps resolved to run templates, as `up` runs them (and a scheduled run re-runs them)."""
    pipeline = node.resource
    assert isinstance(pipeline, PipelineJob)
    folder = (ctx.paths.root / "runs" / pipeline.name).resolve()
    steps = pipeline_steps(ctx.graph, node.id)
    plans = [_step_plan(ctx, node, pipeline, s, str(folder)) for s in steps.values()]
    computes = {p.compute for p in plans}
    return PipelineRun(
        name=pipeline.name, content_hash=node.hash, steps=plans, folder=str(folder),
        capacity={c: capacity(ctx.node(c)) if c in ctx.graph.nodes else 1 for c in computes},
        continue_on_step_failure=pipeline.settings.continue_on_step_failure,
        experiment=pipeline.experiment_name or ctx.graph.spec.workspace.name, tracking_uri=ctx.tracking_uri,
        artifact_location=str(ctx.paths.artifacts.resolve()),
        tags={**label_tags(pipeline.tags, pipeline.description), "mlspec.workspace": ctx.graph.spec.workspace.name})


def apply_pipeline(ctx: Context, node: Node) -> dict[str, Any]:
    from mlspec.runtime.pipeline.runner import run_pipeline

    pipeline = node.resource
    assert isinstance(pipeline, PipelineJob)
    steps = pipeline_steps(ctx.graph, node.id)
    plan = pipeline_plan(ctx, node)
    result = run_pipeline(plan, on_line=lambda line: ctx.say(f"[{pipeline.name}] {line}"), stop=ctx.stop,
                          slots=_SharedSlots(ctx))
    summary = {name: {"status": r.status, "static": steps[name].hash, "run_id": r.run_id, "log": r.log}
               for name, r in result.steps.items()}
    if result.status != "succeeded":
        shown = ", ".join(f"{n}: {s['status']}" for n, s in summary.items())
        raise StepFailed(f"pipeline '{pipeline.name}' {result.status} (MLflow run {result.run_id}; steps {shown}): "
                         f"{result.error}", partial={"steps": summary})
    models: dict[str, int] = {}
    model_runs: dict[str, str | None] = {}
    for step_result in result.steps.values():
        for m in step_result.models:
            record_registered(ctx, m["name"], int(m["version"]), m["sha256"], m["run_id"],
                              reused=bool(m.get("reused")) or step_result.status == "reused")
            models[m["name"]], model_runs[m["name"]] = int(m["version"]), m["run_id"]
    return {"run_id": result.run_id, "models": models, "model_runs": model_runs, "steps": summary}

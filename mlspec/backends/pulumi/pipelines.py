"""A pipeline in the program model: one job whose container runs the local engine's pipeline runner, its steps'
run templates resolved to the paths they have in the job's image (the PipelineRun contract, as JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlspec.graph import Node
from mlspec.graph.steps import StepNode, pipeline_steps
from mlspec.runtime.jobrun import InputBinding, JobRun, OutputBinding
from mlspec.runtime.labels import label_tags
from mlspec.runtime.pipeline.contract import CONTAINER_FOLDER, PipelineRun, StepRun, output_binding, sweep_of_step
from mlspec.spec.compute import ClusterCompute
from mlspec.spec.job import Output
from mlspec.spec.pipeline import PipelineJob, StepInput, SweepStep, parse_binding, step_field, step_runs

if TYPE_CHECKING:
    from mlspec.backends.pulumi.model import JobModel, _Builder

FILES = "/opt/mlspec-job/files"  # the job's code and data in its image (mlspec.backends.pulumi.compile.JOB_FILES)


def pipeline_model(builder: _Builder, node: Node) -> JobModel:
    """The pipeline as a job: its image holds every step's code and data; `pipeline` carries the runner's contract
    (its tracking URI is the target's to set); its size is one node of its compute (each target sizes its
    container from it)."""
    from mlspec.backends.pulumi.model import JobModel, _relative, identifier

    pipeline = node.resource
    assert isinstance(pipeline, PipelineJob)
    steps = pipeline_steps(builder.graph, node.id)
    first = next(iter(pipeline.jobs))
    compute_path = f"jobs.{first}.compute"  # every step's (a step on another compute is refused at validate)
    compute = builder.compute(node.id, compute_path)
    environment = builder.env_of(node.id, f"jobs.{first}.{step_field(pipeline.jobs[first], 'environment')}")
    files = dict(node.files)
    located = builder.spec.files.get(node.id, {})
    places: dict[str, str] = {path: f"{FILES}/{_relative(where, builder.spec.root)}".rstrip("/")
                              for path, where in located.items()}
    for path in [*(f"inputs.{n}" for n in pipeline.inputs),
                 *(f"jobs.{s}.inputs.{n}" for s, step in pipeline.jobs.items() for n in step.inputs)]:
        target = builder.spec.target(node.id, path)
        if target and target.startswith("data/"):
            data = builder.graph.nodes[target]
            files.update(data.files)
            places[path] = f"{FILES}/{Path(data.resource.path).as_posix().rstrip('/')}"  # type: ignore[attr-defined]
    folder = f"{CONTAINER_FOLDER}/{pipeline.name}"
    experiment = pipeline.experiment_name or builder.spec.workspace.name
    tags = {**label_tags(pipeline.tags, pipeline.description), "mlspec.workspace": builder.spec.workspace.name}
    env = dict(next(e for e in builder.environments if e.var == environment).env)
    runs = [_step(builder, node, pipeline, step, places, folder, experiment, tags, env) for step in steps.values()]
    compute_id = f"compute/{compute.name}" if compute else "compute/local"
    nodes = compute.max_nodes if isinstance(compute, ClusterCompute) else 1
    run = PipelineRun(name=pipeline.name, content_hash=node.hash, steps=runs, folder=folder,
                      capacity={compute_id: max(1, min(nodes, sum(s.slots for s in runs)))},
                      continue_on_step_failure=pipeline.settings.continue_on_step_failure, experiment=experiment,
                      tracking_uri="", artifact_location=f"mlflow-artifacts:/{experiment}", tags=tags)
    var = identifier("job", pipeline.name, builder.taken)
    registers = tuple(sorted({o.register_as for s in runs for o in s.template.outputs.values() if o.register_as}))
    for model_name in registers:
        builder.job_of_model[model_name] = var
    return JobModel(
        var=var, name=pipeline.name, content_hash=node.hash, folder=f"job-{pipeline.name}", environment=environment,
        command="", experiment=experiment, code=None, files=dict(sorted(files.items())), inputs={}, outputs={},
        env={}, timeout=None, retries=0, size=builder.size(node.id, compute_path), registers=registers,
        compute=compute.name if compute else None, pipeline=run.model_dump_json(exclude_none=True))


def lanes(run: str) -> int:
    """How many of its compute's nodes the pipeline's container holds: the steps it runs at once."""
    return sum(PipelineRun.model_validate_json(run).capacity.values())


def _step(builder: _Builder, node: Node, pipeline: PipelineJob, step: StepNode, places: dict[str, str], folder: str,
          experiment: str, tags: dict[str, str], env: dict[str, str]) -> StepRun:
    """A step's run template, as the local engine's (backends/local/handlers/pipeline.py), with image paths."""
    name, spec = step.name, step.step
    runs = step_runs(spec)
    inputs: dict[str, InputBinding] = {}
    reads: dict[str, tuple[str, str]] = {}
    for input_name, value in spec.inputs.items():
        bound = parse_binding(value.path if isinstance(value, StepInput) else value)
        if bound is not None and bound.scope == "step":
            reads[input_name] = (bound.step, bound.name)
        elif bound is not None:
            inputs[input_name] = _value(builder, node, f"inputs.{bound.name}", pipeline.inputs[bound.name], places)
        else:
            inputs[input_name] = _value(builder, node, f"jobs.{name}.inputs.{input_name}", value, places)
    workdir = f"{folder}/steps/{name}/pending"
    outputs = {n: _output(builder, pipeline, declared, f"{workdir}/outputs/{n}")
               for n, declared in spec.outputs.items()}
    code = places.get(f"jobs.{name}.{step_field(spec, 'code')}")
    template = JobRun(
        job=f"{pipeline.name}.{name}", experiment=experiment, tracking_uri="",
        artifact_location=f"mlflow-artifacts:/{experiment}", command=runs.command, code=code, workdir=workdir,
        inputs=inputs, outputs=outputs, env={**env, **runs.environment_variables},
        timeout=None if isinstance(spec, SweepStep) else spec.timeout,
        retries=0 if isinstance(spec, SweepStep) else spec.retries, log_file=f"{workdir}/job.log", tags=tags,
        content_hash=step.hash)
    compute = builder.compute(node.id, f"jobs.{name}.compute")
    sweep = sweep_of_step(name, spec, template) if isinstance(spec, SweepStep) else None
    return StepRun(name=name, template=template, static_hash=step.hash, deps=list(step.deps), reads=reads,
                   compute=f"compute/{compute.name}" if compute else "compute/local", sweep=sweep)


def _value(builder: _Builder, node: Node, path: str, value: object, places: dict[str, str]) -> InputBinding:
    """A literal, a Data or model reference, or a path input, as the step receives it in the image."""
    target = builder.spec.target(node.id, path)
    if path in places:
        return InputBinding(path=places[path])
    if target and target.startswith("model/") and isinstance(value, str):
        return InputBinding(value=f"models:/{value.split(':', 1)[1]}")
    assert isinstance(value, (bool, int, float, str))
    return InputBinding(value=value)


def _output(builder: _Builder, pipeline: PipelineJob, declared: Output | str, path: str) -> OutputBinding:
    output = declared if isinstance(declared, Output) else pipeline.outputs[parse_binding(declared).name]  # type: ignore[union-attr]
    model = builder.graph.nodes.get(f"model/{output.register_as}") if output.register_as else None
    return output_binding(output, model.resource if model is not None else None, path)  # type: ignore[arg-type]

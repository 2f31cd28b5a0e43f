"""Pipelines at resolve time: each step's references bound, its bindings checked, and its steps a DAG."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlspec.diagnostics import Diagnostic, Diagnostics, Span, did_you_mean
from mlspec.load.yaml_source import Document
from mlspec.resolve.placeholders import _Locator
from mlspec.spec.compute import ClusterCompute
from mlspec.spec.job import PLACEHOLDER_SCOPES, SEARCH_SPACE_SCOPE, placeholders
from mlspec.spec.pipeline import (
    AnyStep,
    PipelineJob,
    StepInput,
    SweepStep,
    is_binding_like,
    parse_binding,
    step_command,
    step_field,
    step_runs,
)
from mlspec.validate import Declared

if TYPE_CHECKING:
    from mlspec.resolve.references import _Resolver


def resolve_pipeline(resolver: _Resolver, item: Declared, pipeline: PipelineJob) -> None:
    """Bind what every step refers to (compute, environment, code, data), then check the bindings between steps."""
    default = pipeline.settings.default_compute
    if default:
        resolver.bind(item, "settings.default_compute", "Compute", default, content=False)
    for name, value in pipeline.inputs.items():
        _input(resolver, item, f"inputs.{name}", value, allow_bindings=False)
    for step_name, step in pipeline.jobs.items():
        prefix = f"jobs.{step_name}"
        if step.compute is None and default:
            resolver.bind(item, f"{prefix}.compute", "Compute", default, content=False, report=False)
        else:
            resolver.compute(item, f"{prefix}.compute", step.compute)
        runs = step_runs(step)
        resolver.environment(item, f"{prefix}.{step_field(step, 'environment')}", runs.environment)
        if runs.code is not None:
            resolver.locate(item, f"{prefix}.{step_field(step, 'code')}", runs.code, want_dir=True)
        for name, value in step.inputs.items():
            _input(resolver, item, f"{prefix}.inputs.{name}", value, allow_bindings=True)
        if isinstance(step, SweepStep):
            _check_concurrency(resolver, item, step_name, step)
        _check_variables(pipeline, step_name, step, item.doc, resolver.diagnostics)
    check_bindings(pipeline, item.doc, resolver.diagnostics)


def _check_concurrency(resolver: _Resolver, item: Declared, name: str, step: SweepStep) -> None:
    """A sweep step runs no more trials at once than its compute has nodes, as a sweep job."""
    compute_id = resolver.spec.target(item.id, f"jobs.{name}.compute")
    if compute_id is None or compute_id not in resolver.spec.resources:
        return  # an undeclared compute is reported where it is named
    compute = resolver.spec.get(compute_id)
    nodes = compute.max_nodes if isinstance(compute, ClusterCompute) else 1
    wanted = step.limits.max_concurrent_trials
    if wanted > nodes:
        path = f"jobs.{name}.limits.max_concurrent_trials"
        _error(resolver.diagnostics, item.doc, path, f"job '{item.resource.name}': {path} is {wanted}, but compute "
               f"'{compute.name}' can run only {nodes} at once", f"lower it to {nodes}, or run the step on a "
               "cluster compute with enough max_nodes")


def _check_variables(pipeline: PipelineJob, name: str, step: AnyStep, doc: Document,
                     diagnostics: Diagnostics) -> None:
    """Placeholders are substituted in the command only: one in a variable would reach the step as literal text."""
    for key, value in step_runs(step).environment_variables.items():
        found = placeholders(value)
        if found:
            path = f"jobs.{name}.{step_field(step, 'environment_variables')}.{key}"
            _error(diagnostics, doc, path, f"job '{pipeline.name}': {path} holds '{found[0].text}', but "
                   "placeholders are substituted only in the command", "pass it on the command line instead")


def _input(resolver: _Resolver, item: Declared, path: str, value: object, allow_bindings: bool) -> None:
    text = value.path if isinstance(value, StepInput) else value
    if is_binding_like(text):
        if not allow_bindings:
            resolver.diagnostics.error(f"job '{item.resource.name}': {path}: a pipeline's own input cannot bind to "
                                       f"'{text}'", _span(item.doc, path), path,
                                       "give a literal, data:NAME or {type, path}")
        return  # checked with the other bindings
    if isinstance(value, StepInput):
        resolver.locate(item, path, value.path, want_dir=None if value.type == "model" else value.type == "uri_folder")
    elif isinstance(value, str) and value.startswith(("data:", "model:")):
        resolver._data_ref(item, path, value)


def output_type(pipeline: PipelineJob, step: AnyStep, name: str) -> str | None:
    """The type of a step's output: its own, or that of the pipeline output it writes."""
    output = step.outputs.get(name)
    if isinstance(output, str):
        bound = parse_binding(output)
        target = pipeline.outputs.get(bound.name) if bound and bound.scope == "outputs" else None
        return target.type if target else None
    return output.type if output is not None else None


def step_edges(pipeline: PipelineJob) -> dict[str, set[str]]:
    """Step -> the steps whose outputs it reads (only bindings to declared steps)."""
    edges: dict[str, set[str]] = {name: set() for name in pipeline.jobs}
    for name, step in pipeline.jobs.items():
        for value in step.inputs.values():
            bound = parse_binding(value.path if isinstance(value, StepInput) else value)
            if bound and bound.scope == "step" and bound.step in pipeline.jobs:
                edges[name].add(bound.step)
    return edges


def check_bindings(pipeline: PipelineJob, doc: Document, diagnostics: Diagnostics) -> None:
    """Every binding names a declared step, output or input of the right type; every pipeline output is written
    by one step; the steps form no cycle; each step's command names only what it declares."""
    writers: dict[str, list[str]] = {}
    for step_name, step in pipeline.jobs.items():
        prefix = f"jobs.{step_name}"
        for name, value in step.inputs.items():
            _check_input(pipeline, doc, diagnostics, f"{prefix}.inputs.{name}", value)
        for name, output in step.outputs.items():
            path = f"{prefix}.outputs.{name}"
            if isinstance(output, str):
                bound = parse_binding(output)
                if bound is None or bound.scope != "outputs":
                    _error(diagnostics, doc, path, f"job '{pipeline.name}': {path}: '{output}' is not an output "
                           "binding", "write ${{parent.outputs.NAME}}, or {type: uri_folder}")
                elif bound.name not in pipeline.outputs:
                    _unknown(diagnostics, doc, path, f"job '{pipeline.name}': {path} writes pipeline output "
                             f"'{bound.name}', which is not declared", bound.name, list(pipeline.outputs),
                             "declare it under the pipeline's outputs:")
                else:
                    writers.setdefault(bound.name, []).append(step_name)
            elif output.register_as:
                _error(diagnostics, doc, f"{path}.register_as", f"job '{pipeline.name}': {path}: a step's output "
                       "is registered through the pipeline's outputs",
                       f"declare outputs: {{{name}: {{type: model, register_as: {output.register_as}}}}} on the "
                       f"pipeline and write ${{{{parent.outputs.{name}}}}} here")
        _check_command(pipeline, step_name, step, doc, diagnostics)
    for name in pipeline.outputs:
        steps = writers.get(name, [])
        if len(steps) != 1:
            problem = "no step writes it" if not steps else f"steps {', '.join(steps)} all write it"
            _error(diagnostics, doc, f"outputs.{name}", f"job '{pipeline.name}': pipeline output '{name}': {problem}",
                   f"set one step's output to ${{{{parent.outputs.{name}}}}}")
    _check_cycle(pipeline, doc, diagnostics)


def _check_input(pipeline: PipelineJob, doc: Document, diagnostics: Diagnostics, path: str, value: object) -> None:
    text = value.path if isinstance(value, StepInput) else value
    if not is_binding_like(text):
        return
    if isinstance(value, StepInput):
        path = f"{path}.path"
    bound = parse_binding(text)
    where = f"job '{pipeline.name}': {path}"
    if bound is None or bound.scope == "outputs":
        _error(diagnostics, doc, path, f"{where}: '{text}' is not a binding",
               "write ${{parent.jobs.STEP.outputs.NAME}} or ${{parent.inputs.NAME}}")
        return
    expected = value.type if isinstance(value, StepInput) else None
    actual: str | None
    if bound.scope == "inputs":
        if bound.name not in pipeline.inputs:
            _unknown(diagnostics, doc, path, f"{where} reads pipeline input '{bound.name}', which is not declared",
                     bound.name, list(pipeline.inputs), "declare it under the pipeline's inputs:")
            return
        given = pipeline.inputs[bound.name]
        actual = given.type if isinstance(given, StepInput) else None
        if expected and not isinstance(given, StepInput) and not str(given).startswith("data:"):
            actual = "a literal"
    else:
        upstream = pipeline.jobs.get(bound.step)
        if upstream is None:
            _unknown(diagnostics, doc, path, f"{where} reads step '{bound.step}', which is not declared",
                     bound.step, list(pipeline.jobs), "declare it under jobs:")
            return
        if bound.name not in upstream.outputs:
            _unknown(diagnostics, doc, path, f"{where} reads outputs.{bound.name} of step '{bound.step}', which "
                     "declares no such output", bound.name, list(upstream.outputs),
                     f"declare it under jobs.{bound.step}.outputs:")
            return
        actual = output_type(pipeline, upstream, bound.name)
    if expected and actual and expected != actual:
        _error(diagnostics, doc, path, f"{where} expects a {expected}, but '{str(text).strip()}' is "
               f"{actual if actual == 'a literal' else 'a ' + actual}",
               f"declare type: {actual}, or bind an output of type {expected}" if actual != "a literal" else
               f"give the pipeline input as {{type: {expected}, path: ...}}")


def _check_command(pipeline: PipelineJob, step_name: str, step: AnyStep, doc: Document,
                   diagnostics: Diagnostics) -> None:
    """Placeholders of a step's command: `inputs`, `outputs` (and `search_space`) of the step itself."""
    command, field = step_command(step)
    path = f"jobs.{step_name}.{field}"
    declared = {"inputs": list(step.inputs), "outputs": list(step.outputs)}
    if isinstance(step, SweepStep):
        declared[SEARCH_SPACE_SCOPE] = list(step.search_space)
    locator = _Locator(_span(doc, path))
    found = placeholders(command)
    for item in found:
        span = locator.find(item.text)
        where = f"job '{pipeline.name}': {path}"
        if item.problem:
            diagnostics.add(Diagnostic(f"{where}: placeholder '{item.text}' {item.problem}", span, path,
                                       f"write {item.fix}"))
        elif item.scope not in declared:
            guess = did_you_mean(item.scope, declared)
            diagnostics.add(Diagnostic(f"{where}: unknown placeholder scope '{item.scope}' in '{item.text}'", span,
                                       path, f"did you mean '{guess}'?" if guess else "use " + " or ".join(
                                           f"${{{{{s}.NAME}}}}" for s in PLACEHOLDER_SCOPES)))
        elif item.name not in declared[item.scope]:
            guess = did_you_mean(item.name, declared[item.scope])
            diagnostics.add(Diagnostic(f"{where} uses {item.scope}.{item.name}, which step '{step_name}' does not "
                                       f"declare in {item.scope}", span, path,
                                       f"did you mean '{guess}'?" if guess else f"declare it under {item.scope}:"))
    passed = {p.name for p in found if p.scope == "outputs"}
    for name, output in step.outputs.items():
        bound = parse_binding(output) if isinstance(output, str) else None
        target = pipeline.outputs.get(bound.name) if bound else None
        if target is not None and target.register_as and name not in passed:
            diagnostics.add(Diagnostic(
                f"job '{pipeline.name}': step '{step_name}' writes the registered output '{bound.name}' "  # type: ignore[union-attr]
                f"as outputs.{name}, but its command never receives ${{{{outputs.{name}}}}}", _span(doc, path),
                path, f"pass it, e.g. --model-dir ${{{{outputs.{name}}}}}"))


def _check_cycle(pipeline: PipelineJob, doc: Document, diagnostics: Diagnostics) -> None:
    edges = step_edges(pipeline)
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for upstream in sorted(edges[name]):
            if state.get(upstream) == 1:
                return [*path[path.index(upstream):], upstream]
            if upstream not in state and (found := visit(upstream)):
                return found
        path.pop()
        state[name] = 2
        return None

    for name in sorted(edges):
        if name not in state and (cycle := visit(name)):
            # Shown in the direction data flows: each step feeds the next.
            flow = list(reversed(cycle))
            reader, source = cycle[0], cycle[1]
            at = next(f"jobs.{reader}.inputs.{n}" for n, v in pipeline.jobs[reader].inputs.items()
                      if (b := parse_binding(v.path if isinstance(v, StepInput) else v)) and b.step == source)
            _error(diagnostics, doc, at, f"job '{pipeline.name}': steps form a cycle: {' → '.join(flow)}",
                   "a step cannot read its own output, directly or through other steps; remove one of these bindings")
            return


def _unknown(diagnostics: Diagnostics, doc: Document, path: str, summary: str, name: str, known: list[str],
             otherwise: str) -> None:
    guess = did_you_mean(name, known)
    _error(diagnostics, doc, path, summary, f"did you mean '{guess}'?" if guess else otherwise)


def _span(doc: Document, dotted: str) -> Span | None:
    return doc.span(tuple(int(p) if p.isdigit() else p for p in dotted.split(".")))


def _error(diagnostics: Diagnostics, doc: Document, path: str, summary: str, hint: str) -> None:
    diagnostics.add(Diagnostic(summary, _span(doc, path), path, hint))

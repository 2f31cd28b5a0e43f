"""Models at resolve time: which job output registers which model, and model references the spec cannot deliver."""

from __future__ import annotations

from mlspec.diagnostics import Diagnostic, Diagnostics, Span
from mlspec.load.yaml_source import Document
from mlspec.resolve.spec import ResolvedSpec
from mlspec.spec import Model, ModelRef
from mlspec.spec.automl import MODEL_JOBS, ModelJob
from mlspec.spec.job import placeholders
from mlspec.spec.pipeline import PipelineJob
from mlspec.spec.sweep import JOB_MODELS, command_field
from mlspec.validate import Declared


def model_output(model: Model, job: ModelJob | PipelineJob) -> str | None:
    """The job output a Model registers: the one it names, else the job's only model output."""
    if model.output is not None:
        return model.output
    outputs = [name for name, output in job.outputs.items() if output.type == "model"]
    return outputs[0] if len(outputs) == 1 else None


def register_declared_models(spec: ResolvedSpec, diagnostics: Diagnostics) -> None:
    """A `kind: Model` with `job:` registers that job's output: the resolved job says so with `register_as`.

    One fact then feeds every back end (the local runner and the compiled program both register what
    `register_as` names), and the job's content hash covers it: declaring the Model retrains the job once.
    """
    claimed: dict[tuple[str, str], Declared] = {}
    for item in list(spec.resources.values()):
        model = item.resource
        if not isinstance(model, Model) or model.job is None or item.id in spec.implicit:
            continue
        job_id = spec.target(item.id, "job")
        job = spec.get(job_id) if job_id else None
        if not isinstance(job, (*MODEL_JOBS, PipelineJob)) or job_id is None:
            continue
        output_name = model_output(model, job)
        output = job.outputs.get(output_name) if output_name else None
        if output_name is None or output is None or output.type != "model":
            continue  # reported by the resolver
        field = "output" if model.output else "job"
        first = claimed.get((job_id, output_name))
        if first is not None:
            _error(diagnostics, item.doc, field,
                   f"model '{model.name}': output '{output_name}' of job '{job.name}' is already registered as "
                   f"'{first.resource.name}' ({_at(first.doc)})", "one output registers one model")
            continue
        if output.register_as not in (None, model.name):
            _error(diagnostics, item.doc, field,
                   f"model '{model.name}': output '{output_name}' of job '{job.name}' is already registered as "
                   f"'{output.register_as}' (its register_as)",
                   f"one output registers one model: remove register_as, or name this Model '{output.register_as}'")
            continue
        claimed[(job_id, output_name)] = item
        if model.flavor and output.flavor and model.flavor != output.flavor:
            _error(diagnostics, item.doc, "flavor",
                   f"model '{model.name}' declares flavor {model.flavor}, but output '{output_name}' of job "
                   f"'{job.name}' declares flavor {output.flavor}", "declare the flavor in one place")
            continue
        if output.register_as == model.name:
            continue
        other = next((n for n, o in job.outputs.items() if o.register_as == model.name), None)
        if other is not None:
            _error(diagnostics, item.doc, field,
                   f"model '{model.name}': job '{job.name}' already registers it from output '{other}'",
                   f"set output: {other}, or remove register_as from output '{other}'")
            continue
        registered = output.model_copy(update={"register_as": model.name, "flavor": output.flavor or model.flavor})
        outputs = {**job.outputs, output_name: registered}
        job_item = spec.resources[job_id]
        spec.resources[job_id] = Declared(job.model_copy(update={"outputs": outputs}), job_item.doc)


def check_outputs_passed(spec: ResolvedSpec, diagnostics: Diagnostics) -> None:
    """A registered output the command never receives cannot be written: the script has no way to know its path."""
    for item in spec.resources.values():
        job = item.resource
        if not isinstance(job, JOB_MODELS):
            continue
        command, command_path = command_field(job)
        found = placeholders(command)
        if any(p.problem or (p.scope == "outputs" and p.name not in job.outputs) for p in found):
            continue  # a misspelt placeholder is reported as such; this would say the same twice
        passed = {p.name for p in found if p.scope == "outputs"}
        for name, output in job.outputs.items():
            if output.register_as and name not in passed:
                diagnostics.add(Diagnostic(
                    f"job '{job.name}' registers outputs.{name} as model '{output.register_as}', but its command "
                    f"never receives ${{{{outputs.{name}}}}}, so the script cannot know where to save the model",
                    _span(item.doc, command_path), command_path, f"pass it, e.g. --model-dir ${{{{outputs.{name}}}}}"))


def check_aliases(spec: ResolvedSpec, diagnostics: Diagnostics) -> None:
    """`NAME@ALIAS` where the spec declares model NAME but no Model gives it that alias: a warning, since the alias
    may have been set in the registry outside mlspec (plan and up check the registry and stop if it is not)."""
    for source, path, name, alias in undeclared_aliases(spec):
        model_id = f"model/{name}"
        model = spec.resources[model_id]
        where = model.doc.span(("name",))
        if model_id in spec.implicit:  # registered by `register_as`: a Model document gives it aliases
            job = model.resource.job  # type: ignore[attr-defined]
            fix = f"declare kind: Model, name: {name}, job: {job}, aliases: [{alias}]"
        else:
            fix = f"add aliases: [{alias}] to model '{name}'" + (f" ({where.file}:{where.line})" if where else "")
        diagnostics.add(Diagnostic(
            f"no Model in the spec gives '{name}' the alias '{alias}'; it must already be set in the registry "
            "(plan and up check, and stop if it is not)", _span(spec.resources[source].doc, path), path,
            f"{fix}, or refer to {name}@latest", severity="warning"))


def model_references(spec: ResolvedSpec) -> list[tuple[str, str, ModelRef]]:
    """Every (source id, field path, parsed reference) naming a Model of the spec."""
    found = []
    for ref in spec.references:
        item = spec.resources.get(ref.source)
        model = spec.resources.get(ref.target)
        if item is None or model is None or not isinstance(model.resource, Model):
            continue
        text = _reference_text(item, ref.path)
        if text is not None:
            found.append((ref.source, ref.path, ModelRef.parse(text)))
    return found


def undeclared_aliases(spec: ResolvedSpec) -> list[tuple[str, str, str, str]]:
    """Every (source id, field path, model name, alias) that no Model of the spec declares: the registry must hold
    it already."""
    found = []
    for source, path, parsed in model_references(spec):
        model = spec.get(f"model/{parsed.name}")
        assert isinstance(model, Model)
        if parsed.alias not in (None, "latest") and parsed.alias not in model.aliases:
            found.append((source, path, parsed.name, str(parsed.alias)))
    return found


def _reference_text(item: Declared, path: str) -> str | None:
    """The model reference a field holds (`model:` prefix of a job input removed), or None if it holds none."""
    value: object = item.resource
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
    if not isinstance(value, str):
        return None
    if path.startswith("inputs."):
        scheme, _, rest = value.partition(":")
        return rest if scheme == "model" else None
    return value


def _at(doc: Document) -> str:
    span = doc.span(("name",))
    return f"{span.file}:{span.line}" if span else doc.file


def _span(doc: Document, dotted: str) -> Span | None:
    return doc.span(tuple(int(p) if p.isdigit() else p for p in dotted.split(".")))


def _error(diagnostics: Diagnostics, doc: Document, field: str, summary: str, hint: str) -> None:
    diagnostics.add(Diagnostic(summary, _span(doc, field), field, hint))

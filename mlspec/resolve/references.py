"""Resolve stage: bind references, apply workspace defaults, locate files, check placeholders."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

from mlspec.diagnostics import Diagnostic, Diagnostics, Span, did_you_mean
from mlspec.load.yaml_source import Document
from mlspec.resolve.automl import check_automl
from mlspec.resolve.models import check_aliases, check_outputs_passed, register_declared_models
from mlspec.resolve.pipelines import resolve_pipeline
from mlspec.resolve.placeholders import check_command, check_unsubstituted
from mlspec.resolve.scoring import check_scoring
from mlspec.resolve.spec import Reference, ResolvedSpec
from mlspec.resolve.sweeps import check_sweep_concurrency
from mlspec.spec import AutoMLJob, BatchEndpoint, Model, ModelRef, OnlineEndpoint, Workspace
from mlspec.spec.automl import MODEL_JOBS
from mlspec.spec.compute import InstanceCompute, LocalCompute
from mlspec.spec.environment import Environment
from mlspec.spec.job import PathInput
from mlspec.spec.pipeline import PipelineJob
from mlspec.spec.sweep import JOB_MODELS, AnyJob, SweepJob, trial_field
from mlspec.validate import Declared, Validated

DEFAULT_COMPUTE = "local"
_REF = re.compile(r"^(data|model):(.+)$")


class _Resolver:
    def __init__(self, validated: Validated, root: Path, diagnostics: Diagnostics):
        declared = validated.declared
        self.broken = validated.broken
        self.diagnostics = diagnostics
        self.by_id = {d.id: d for d in declared}
        workspace = next((d for d in declared if d.kind == "Workspace"), None)
        ws = workspace.resource if workspace else Workspace(name=_folder_name(root))
        assert isinstance(ws, Workspace)
        self.spec = ResolvedSpec(root, ws)
        self.spec.resources = {d.id: d for d in declared if d.kind != "Workspace"}

    # -- helpers ---------------------------------------------------------------------------------
    def bind(self, item: Declared, path: str, kind: str, name: str, content: bool = True,
             report: bool = True) -> str | None:
        """Record a reference to `kind/name`, or report it as undeclared with a suggestion."""
        target = f"{kind.lower()}/{name}"
        if target in self.spec.resources:
            self.spec.references.append(Reference(item.id, path, target, content))
            return target
        if target in self.broken or not report:
            return None  # already reported where it is declared
        prefix = f"{kind.lower()}/"
        names = {rid[len(prefix):]: d.doc for rid, d in self.spec.resources.items() if rid.startswith(prefix)}
        names.update({rid[len(prefix):]: doc for rid, doc in self.broken.items() if rid.startswith(prefix)})
        guess = did_you_mean(name, names)
        hint = f"declare a {kind} named '{name}'"
        if guess:
            where = names[guess].span(("name",))
            hint = f"did you mean '{guess}'" + (f" ({where.file}:{where.line})" if where else "") + "?"
        self.diagnostics.add(Diagnostic(f"{kind.lower()} '{name}' is not declared",
                                        _span(item.doc, path), path, hint))
        return None

    def locate(self, item: Declared, path: str, relative: str, want_dir: bool | None = None) -> Path | None:
        """A path from the spec, relative to the file that declared it; it must exist."""
        base = _folder_of(os.getcwd(), item.doc.file)
        located = Path(os.path.normpath(base / relative))  # normpath, not resolve(): no syscall per path
        if not located.exists():
            self.diagnostics.error(f"{item.kind} '{item.resource.name}': {path}: '{relative}' does not exist",
                                   _span(item.doc, path), path, f"paths are relative to {base}")
            return None
        if want_dir is not None and located.is_dir() != want_dir:
            self.diagnostics.error(f"{item.kind} '{item.resource.name}': {path}: '{relative}' is not a "
                                   f"{'folder' if want_dir else 'file'}", _span(item.doc, path), path)
            return None
        self.spec.files.setdefault(item.id, {})[path] = located
        return located

    def compute(self, item: Declared, path: str, name: str | None) -> None:
        if name or self.spec.workspace.defaults.compute:  # a bad default is reported once, at the workspace
            self.bind(item, path, "Compute", name or self.spec.workspace.defaults.compute or "", content=False,
                      report=name is not None)
            return
        default = f"compute/{DEFAULT_COMPUTE}"
        if default not in self.spec.resources:  # nothing declared: run on this machine
            self.spec.resources[default] = Declared(LocalCompute(name=DEFAULT_COMPUTE), item.doc)
            self.spec.implicit.add(default)
        self.spec.references.append(Reference(item.id, path, default, content=False))

    def environment(self, item: Declared, path: str, name: str | None) -> None:
        default = self.spec.workspace.defaults.environment
        if name or default:  # no environment at all: the current interpreter
            self.bind(item, path, "Environment", name or default or "", report=name is not None)

    def model(self, item: Declared, path: str, text: str) -> None:
        ref = ModelRef.parse(text)
        # A pinned version does not change when the model retrains, so it does not carry its hash.
        self.bind(item, path, "Model", ref.name, content=ref.version is None)

    # -- kinds -----------------------------------------------------------------------------------
    def run(self) -> ResolvedSpec:
        self._implicit_models()
        for item in list(self.spec.resources.values()):
            resource = item.resource
            if isinstance(resource, JOB_MODELS):
                self._job(item, resource)
            elif isinstance(resource, AutoMLJob):
                self.compute(item, "compute", resource.compute)
                self._data_ref(item, "training_data", resource.training_data)
            elif isinstance(resource, PipelineJob):
                resolve_pipeline(self, item, resource)
            elif isinstance(resource, Model):
                self._model(item, resource)
            elif isinstance(resource, OnlineEndpoint):
                for name, deployment in resource.deployments.items():
                    prefix = f"deployments.{name}"
                    self.model(item, f"{prefix}.model", deployment.model)
                    self.compute(item, f"{prefix}.compute", deployment.compute)
                    if deployment.environment:
                        self.environment(item, f"{prefix}.environment", deployment.environment)
                    check_scoring(self, item, prefix, deployment)
            elif isinstance(resource, BatchEndpoint):
                self.model(item, "model", resource.model)
                self.compute(item, "compute", resource.compute)
                if resource.environment:
                    self.environment(item, "environment", resource.environment)
                self._data_ref(item, "input", resource.input)
                check_scoring(self, item, "", resource)
            elif isinstance(resource, InstanceCompute) and resource.environment:
                self.environment(item, "environment", resource.environment)
            elif isinstance(resource, Environment):
                self._environment_files(item, resource)
            elif resource.kind == "Data":  # type: ignore[attr-defined]
                self._data(item)
        register_declared_models(self.spec, self.diagnostics)
        check_outputs_passed(self.spec, self.diagnostics)
        check_sweep_concurrency(self.spec, self.diagnostics)
        check_automl(self.spec, self.diagnostics)
        check_aliases(self.spec, self.diagnostics)
        ws_doc = next((d.doc for d in self.by_id.values() if d.kind == "Workspace"), None)
        for field_name in ("compute", "environment"):
            name = getattr(self.spec.workspace.defaults, field_name)
            if name and f"{field_name}/{name}" not in self.spec.resources and ws_doc:
                ws_item = Declared(self.spec.workspace, ws_doc)
                self.bind(ws_item, f"defaults.{field_name}", field_name.capitalize(), name)
        return self.spec

    def _implicit_models(self) -> None:
        """A job output with `register_as: X` declares model X unless a Model X is written out."""
        for item in list(self.spec.resources.values()):
            if not isinstance(item.resource, (*MODEL_JOBS, PipelineJob)):
                continue
            for output_name, output in item.resource.outputs.items():
                if not output.register_as:
                    continue
                model_id = f"model/{output.register_as}"
                existing = self.spec.resources.get(model_id)
                if existing is None:
                    model = Model(name=output.register_as, job=item.resource.name, output=output_name,
                                  flavor=output.flavor)
                    self.spec.resources[model_id] = Declared(model, item.doc)
                    self.spec.implicit.add(model_id)
                elif not isinstance(existing.resource, Model) or existing.resource.job != item.resource.name:
                    self.diagnostics.error(
                        f"job '{item.resource.name}' registers model '{output.register_as}', but that model is "
                        f"declared with another source at {existing.doc.span(())}",
                        _span(item.doc, f"outputs.{output_name}.register_as"), f"outputs.{output_name}.register_as",
                        "set the Model's job to this job, or remove register_as")

    def _job(self, item: Declared, job: AnyJob) -> None:
        runs = job.trial if isinstance(job, SweepJob) else job  # a sweep's trial holds the command job's fields
        self.compute(item, "compute", job.compute)
        self.environment(item, trial_field(job, "environment"), runs.environment)
        if runs.code is not None:
            self.locate(item, trial_field(job, "code"), runs.code, want_dir=True)
        for name, value in job.inputs.items():
            path = f"inputs.{name}"
            if isinstance(value, PathInput):
                self.locate(item, path, value.path, want_dir=value.type == "uri_folder")
            elif isinstance(value, str) and _REF.match(value):
                self._data_ref(item, path, value)
        check_command(job, item.doc, self.diagnostics)
        check_unsubstituted(job, item.doc, self.diagnostics)

    def _data_ref(self, item: Declared, path: str, text: str) -> None:
        match = _REF.match(text)
        if not match:
            self.diagnostics.error(f"{item.kind} '{item.resource.name}': {path}: '{text}' is not a reference",
                                   _span(item.doc, path), path, "write data:NAME")
            return
        scheme, name = match.groups()
        if scheme == "data":
            self.bind(item, path, "Data", name)
        else:
            try:
                self.model(item, path, name)
            except ValueError as exc:
                self.diagnostics.error(f"{item.kind} '{item.resource.name}': {path}: {exc}",
                                       _span(item.doc, path), path)

    def _model(self, item: Declared, model: Model) -> None:
        if model.path is not None:
            self.locate(item, "path", model.path)
            return
        assert model.job is not None
        job_id = self.bind(item, "job", "Job", model.job)
        if job_id is None:
            return
        job = self.spec.get(job_id)
        assert isinstance(job, (*MODEL_JOBS, PipelineJob))
        model_outputs = [n for n, o in job.outputs.items() if o.type == "model"]
        if model.output is None and len(model_outputs) != 1:
            self.diagnostics.error(f"model '{model.name}': job '{job.name}' has {len(model_outputs)} model outputs; "
                                   "say which with 'output'", _span(item.doc, "job"), "job")
        elif model.output is not None and model.output not in model_outputs:
            guess = did_you_mean(model.output, model_outputs)
            self.diagnostics.error(f"model '{model.name}': job '{job.name}' has no model output '{model.output}'",
                                   _span(item.doc, "output"), "output", f"did you mean '{guess}'?" if guess else None)

    def _environment_files(self, item: Declared, env: Environment) -> None:
        if isinstance(env.requirements, str):
            self.locate(item, "requirements", env.requirements, want_dir=False)
        if env.conda_file:
            self.locate(item, "conda_file", env.conda_file, want_dir=False)
        if env.build:
            self.locate(item, "build.context", env.build.context, want_dir=True)
        if env.wheelhouse:
            self.locate(item, "wheelhouse", env.wheelhouse, want_dir=True)

    def _data(self, item: Declared) -> None:
        data: Any = item.resource
        want = None if data.type is None else data.type == "uri_folder"
        self.locate(item, "path", data.path, want_dir=want)


@functools.lru_cache(maxsize=256)
def _folder_of(cwd: str, file: str) -> Path:
    """The folder of a spec file; keyed on the working folder too, since files are named relative to it."""
    return Path(cwd, file).resolve().parent


def _span(doc: Document, dotted: str) -> Span | None:
    return doc.span(tuple(int(p) if p.isdigit() else p for p in dotted.split(".")))


def _folder_name(root: Path) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", root.name.lower()).strip("-_")
    return name[:63] or "workspace"


def resolve(validated: Validated, root: Path, diagnostics: Diagnostics) -> ResolvedSpec:
    """Bind every reference; problems become diagnostics."""
    return _Resolver(validated, root, diagnostics).run()

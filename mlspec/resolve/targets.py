"""Target check: every field a spec sets is honoured by the target it deploys to, or refused at its line."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from pydantic import BaseModel

from mlspec.diagnostics import Diagnostic, Diagnostics
from mlspec.resolve.docker_hosts import check_docker_hosts
from mlspec.resolve.pipeline_targets import check_pipeline_targets
from mlspec.resolve.spec import ResolvedSpec
from mlspec.spec.capabilities import Support, Target, honouring, row_for
from mlspec.spec.compute import AttachedCompute, ComputeBase
from mlspec.spec.conda import CondaFile
from mlspec.spec.environment import Environment
from mlspec.spec.job import Job
from mlspec.spec.pipeline import PipelineJob
from mlspec.validate import Declared

Path = tuple[str | int, ...]

_NO_DEFAULT = object()


@cache
def _defaults(cls: type[BaseModel]) -> tuple[tuple[str, Any], ...]:
    """Each field of a model class with its default (made once: a factory's fresh value is only compared)."""
    return tuple((name, _NO_DEFAULT if info.is_required() else info.get_default(call_default_factory=True))
                 for name, info in cls.model_fields.items())


def _set_fields(model: BaseModel) -> Iterator[tuple[str, Any]]:
    """The fields a document wrote with a value other than the default, in declaration order."""
    written = model.model_fields_set
    for name, default in _defaults(type(model)):
        if name not in written:
            continue
        value = getattr(model, name)
        if default is _NO_DEFAULT or value != default:
            yield name, value


def _children(value: Any, path: Path) -> Iterator[tuple[BaseModel, Path]]:
    if isinstance(value, BaseModel):
        yield value, path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _children(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _children(item, (*path, index))


class _Checker:
    def __init__(self, target: Target, diagnostics: Diagnostics) -> None:
        self.target, self.diagnostics = target, diagnostics

    def report(self, item: Declared, model: type, field: str, path: Path, support: Support) -> None:
        what = item.kind if field == "" else ".".join(str(p) for p in path)
        if field == "":
            variant = getattr(item.resource, "type", None)
            what = f"{item.kind} of type '{variant}'" if isinstance(variant, str) else item.kind
        others = [t for t in honouring(model, field) if t != self.target]
        span = item.doc.key_span(path) if path else item.doc.span(("type",))
        subject = f"{item.kind} '{item.resource.name}': {what}"
        if support.level == "ignored":
            self.diagnostics.add(Diagnostic(
                f"{subject} has no effect on the {self.target} target: {support.note}", span, _dotted(path),
                "harmless here; it takes effect on " + ", ".join(others) if others else "harmless here",
                severity="warning"))
            return
        hint = f"honoured on the {' and '.join(others)} target{'s' if len(others) > 1 else ''}" if others else \
            "no target honours it yet"
        self.diagnostics.add(Diagnostic(f"{subject} is not supported on the {self.target} target: {support.note}",
                                        span, _dotted(path), f"{hint}; remove it to deploy here"))

    def walk(self, item: Declared, model: BaseModel, path: Path) -> None:
        cls = type(model)
        for field, value in _set_fields(model):
            row = row_for(cls, field)
            field_path = (*path, field)
            if row is None:  # every field has a row (a test walks the schema); nothing to say otherwise
                continue
            support = row.on(self.target)
            if _is_refused(value, support):
                self.report(item, cls, field, field_path, Support("no", support.note))
                continue
            if support.level in ("no", "ignored"):
                self.report(item, cls, field, field_path, support)
                if support.level == "no":
                    continue  # what lies under a refused field is not reported again
            for child, child_path in _children(value, field_path):
                self.walk(item, child, child_path)

    def resource(self, item: Declared) -> None:
        row = row_for(type(item.resource), "")
        support = row.on(self.target) if row else None
        if support is not None and support.level == "no":
            self.report(item, type(item.resource), "", (), support)
            return
        if isinstance(item.resource, ComputeBase):
            self.compute_target(item, item.resource)
        self.walk(item, item.resource, ())

    def compute_target(self, item: Declared, compute: ComputeBase) -> None:
        if compute.target is not None and compute.target != self.target:
            self.diagnostics.add(Diagnostic(
                f"compute '{compute.name}' is for the {compute.target} target, but this deploys to {self.target}",
                item.doc.span(("target",)), "target",
                f"remove 'target' so the compute follows the stack, or deploy with --target {compute.target}"))

    def conda_file(self, item: Declared, env: Environment, spec: ResolvedSpec) -> None:
        """A conda file's pip section (and, on images, its Python version) is installed; a conda package a
        virtualenv lacks is refused at the file's line."""
        path = spec.files.get(item.id, {}).get("conda_file")
        if self.target not in ("local", "docker") or path is None:
            return
        try:
            conda = CondaFile.read(path)
        except (OSError, ValueError) as exc:
            self.diagnostics.error(f"environment '{env.name}': conda_file {path} cannot be read: {exc}",
                                   item.doc.span(("conda_file",)), "conda_file")
            return
        if conda.conda_only:
            what = "the pip section" if self.target == "local" else "the pip section and the Python version"
            elsewhere = "or deploy to the docker target" if self.target == "local" else \
                "or build your own image with 'build'"
            self.diagnostics.error(
                f"environment '{env.name}': the {self.target} target installs only {what} of {path.name}, "
                f"and it also asks conda for {', '.join(conda.conda_only)}", item.doc.span(("conda_file",)),
                "conda_file", f"move them under 'pip:' (or into requirements), {elsewhere}")


def _reaches_tracking(item: Declared, compute: AttachedCompute, spec: ResolvedSpec, diagnostics: Diagnostics) -> None:
    """An attached context is another cluster: the workspace's own MLflow, a Service of the stack's cluster, is out
    of its pods' reach, so its jobs and replicas need a tracking server both clusters reach."""
    if compute.kube_context and spec.workspace.tracking.uri is None:
        diagnostics.error(
            f"compute '{compute.name}': attached context '{compute.kube_context}' is another cluster, whose pods "
            "cannot reach the workspace's own MLflow (a Service of the stack's cluster)",
            item.doc.span(("kube_context",)), "kube_context",
            "set the workspace's tracking.uri to an MLflow server both clusters reach, or use a compute of the "
            "stack's cluster")


def _is_refused(value: Any, support: Support) -> bool:
    """A value the target refuses though it honours the field (compared by type too: False is not 0)."""
    return any(type(value) is type(refused) and value == refused for refused in support.refused)


def _dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)


def check_targets(declared: list[Declared], spec: ResolvedSpec, target: Target, diagnostics: Diagnostics) -> None:
    """Refuse, at their lines, the fields `target` does not honour; warn where ignoring one is harmless."""
    checker = _Checker(target, diagnostics)
    for item in declared:
        checker.resource(item)
        if isinstance(item.resource, AttachedCompute) and target == "kubernetes":
            _reaches_tracking(item, item.resource, spec, diagnostics)
        if isinstance(item.resource, Environment) and item.resource.conda_file:
            checker.conda_file(item, item.resource, spec)
        if isinstance(item.resource, Job) and item.resource.schedule and target == "kubernetes" \
                and item.resource.resources.instance_count > 1:
            diagnostics.error(f"job '{item.resource.name}': a schedule on the kubernetes target runs one pod, and "
                              f"this job runs on {item.resource.resources.instance_count} nodes (pods of a CronJob's "
                              "Jobs cannot find each other by name)", item.doc.key_span(("schedule",)), "schedule",
                              "remove the schedule or run the job on one node (resources.instance_count: 1)")
        if isinstance(item.resource, PipelineJob) and target in ("docker", "kubernetes"):
            check_pipeline_targets(item, item.resource, spec, target, diagnostics)
    if target == "docker":
        check_docker_hosts(declared, spec, diagnostics)


"""Model changes in a plan: which version each will have after `up`, and model aliases nothing will provide."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mlspec.graph import Graph, Node
from mlspec.plan.model import Blocker, Change, Record
from mlspec.plan.pipelines import rerun_steps, writer_of
from mlspec.plan.registry import RegistryView, source_digest
from mlspec.resolve.models import model_output, model_references, undeclared_aliases
from mlspec.spec import Model
from mlspec.spec.pipeline import PipelineJob


def model_change(node: Node, change: Change, record: Record | None, planned: dict[str, Change], graph: Graph,
                 registry: RegistryView | None) -> Change:
    """The change with the version the model will have: a new one (numbered as the registry will number it), the
    one its job registered already (only aliases change), or an existing version with the same files (reused)."""
    model = node.resource
    if change.action == "noop" or not isinstance(model, Model):
        return change
    name = model.name
    current = record.outputs.get("version") if record and isinstance(record.outputs.get("version"), int) else None
    if model.job is not None:
        job = planned.get(f"job/{model.job}")
        if job is None or current is None or (job.action != "noop" and not _step_reused(graph, model, job)):
            return replace(change, version=_next(name, current, registry), registers=True)  # the job trains
        return _relabel(change, model, record, current)  # the version its job registered stays
    source = _source(graph, node)
    files_changed = record is None or record.files != node.files or current is None
    if not files_changed and current is not None:
        return _relabel(change, model, record, current)
    digest = source_digest(node.files, source) if source else None
    reused = registry.sources.get(name, {}).get(digest) if registry and digest else None
    if reused is not None:
        return replace(change, version=reused, registers=False,
                       reasons=(*change.reasons, f"the same files as {name}:{reused}, which is reused"))
    return replace(change, version=_next(name, current, registry), registers=True)


def _step_reused(graph: Graph, model: Model, job: Change | None) -> bool:
    """A pipeline that runs again, but not the step that writes this model: its version stays."""
    pipeline = graph.nodes[f"job/{model.job}"].resource if f"job/{model.job}" in graph.nodes else None
    if job is None or job.action == "create" or not isinstance(pipeline, PipelineJob):
        return False
    output = model_output(model, pipeline)
    writer = writer_of(pipeline, output) if output else None
    return writer is not None and writer not in rerun_steps(job.reasons)


def _next(name: str, current: int | None, registry: RegistryView | None) -> int | None:
    if registry is not None:
        return registry.next_version(name)
    return current + 1 if current is not None else None  # no registry read: this workspace's own count


def _relabel(change: Change, model: Model, record: Record | None, version: int) -> Change:
    """A change that registers nothing: the version stays; its aliases (and other settings) change."""
    before = list(record.spec.get("aliases", [])) if record else []
    added = [a for a in model.aliases if a not in before]
    removed = [a for a in before if a not in model.aliases]
    reasons = [f"set alias {a} on {model.name}:{version}" for a in added]
    reasons += [f"remove alias {a}" for a in removed]
    reasons += [r for r in change.reasons if not r.startswith("aliases")]
    return replace(change, version=version, registers=False, verb="update",
                   reasons=tuple(reasons) or change.reasons)


def _source(graph: Graph, node: Node) -> str | None:
    located = graph.spec.files.get(node.id, {}).get("path")
    if located is None:
        return None
    try:
        return Path(located).relative_to(graph.spec.root).as_posix()
    except ValueError:
        return Path(located).as_posix()


def reference_blockers(graph: Graph, registry: RegistryView | None, planned: dict[str, Change]) -> list[Blocker]:
    """References the registry cannot satisfy after `up`: `NAME@ALIAS` that neither the spec declares nor the
    registry has, and `NAME:VERSION` that the registry lacks and `up` will not register."""
    if registry is None:
        return []  # the registry could not be read: the step that needs the model reports it
    blockers = [Blocker(source, f"{path}: no version of model '{name}' has alias '{alias}' in the registry, and no "
                                f"Model in the spec declares it; add aliases: [{alias}] to model '{name}', or set "
                                "the alias in MLflow")
                for source, path, name, alias in undeclared_aliases(graph.spec) if not registry.has_alias(name, alias)]
    for source, path, ref in model_references(graph.spec):
        if ref.version is None or ref.version in registry.versions.get(ref.name, set()):
            continue
        change = planned.get(f"model/{ref.name}")
        if change is not None and change.registers and change.version == ref.version:
            continue  # this very `up` registers it
        have = sorted(registry.versions.get(ref.name, set()))
        known = f"it has {', '.join(map(str, have))}" if have else "it has none"
        blockers.append(Blocker(source, f"{path}: the registry has no version {ref.version} of model '{ref.name}' "
                                        f"({known}), and up will not register it; refer to {ref.name}@latest or "
                                        "to a version that exists"))
    return blockers

"""Pipelines on the docker and kubernetes targets: one container runs every step, so the steps share one environment
(its image) and one compute (its size); a step that names another than the first step's is refused at its line."""

from __future__ import annotations

from mlspec.diagnostics import Diagnostics
from mlspec.resolve.spec import ResolvedSpec
from mlspec.spec.pipeline import PipelineJob, step_field
from mlspec.validate import Declared


def check_pipeline_targets(item: Declared, pipeline: PipelineJob, spec: ResolvedSpec, target: str,
                           diagnostics: Diagnostics) -> None:
    """Every step's environment and compute are the first step's (as resolved, defaults included)."""
    defaults = spec.workspace.defaults
    first: dict[str, tuple[str, str | None]] = {}  # what -> (first step, its resource id)
    for name, step in pipeline.jobs.items():
        for what, field, default in (("environment", step_field(step, "environment"), defaults.environment),
                                     ("compute", "compute", defaults.compute)):
            found = spec.target(item.id, f"jobs.{name}.{field}")
            if found is None and default:
                found = f"{what}/{default}"
            if what not in first:
                first[what] = (name, found)
                continue
            leader, wanted = first[what]
            if found == wanted:
                continue
            path = ("jobs", name, *field.split("."))
            # At the step's own field; where it names none (a default differs), at the step.
            span = item.doc.key_spans.get(path) or item.doc.key_span(("jobs", name))
            diagnostics.error(
                f"job '{pipeline.name}': step '{name}' runs {'in' if what == 'environment' else 'on'} {what} "
                f"'{_name(found)}', but step '{leader}' {'in' if what == 'environment' else 'on'} '{_name(wanted)}': "
                f"on the {target} target a pipeline's steps are processes of one container, with one image and one "
                "size", span, f"jobs.{name}.{field}",
                f"give every step the {what} of step '{leader}', or run the pipeline on the local target")


def _name(resource_id: str | None) -> str:
    return resource_id.split("/", 1)[1] if resource_id else "(none)"

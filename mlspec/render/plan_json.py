"""A plan as versioned JSON for machines; its JSON Schema (`mlspec schema --plan`) documents each field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlspec.plan.report import PlanReport
from mlspec.render.plan import summary

# Bumped when a field is removed or changes meaning; fields are only ever added within a version.
SCHEMA_VERSION = 1
ACTIONS = ("create", "update", "replace", "delete", "noop")


def plan_document(report: PlanReport) -> dict[str, Any]:
    plan = report.plan
    upstream: dict[str, set[str]] = {}
    for up, down in report.edges:
        upstream.setdefault(down, set()).add(up)
    return {
        "schema_version": SCHEMA_VERSION,
        "base": {"against": report.base.against, "description": report.base.description, **report.base.details},
        "target": report.target,
        "has_changes": report.has_changes,
        "headline": summary(plan),
        "summary": {action: plan.count(action) for action in ACTIONS},  # type: ignore[arg-type]
        "registrations": plan.registrations,
        "changes": [{**c.as_dict(), "reasons": list(c.reasons), "name": c.id.split("/", 1)[1],
                     "depends_on": sorted(upstream.get(c.id, ()))} for c in plan.changes],
        "traffic": [shift.as_dict() for shift in report.traffic],
        "generated": None if report.generated is None else [g.as_dict() for g in report.generated],
        "blockers": [{"id": b.id, "message": b.message} for b in plan.blockers],
    }


def plan_schema() -> dict[str, Any]:
    """The JSON Schema of `plan_document`'s output, shipped beside this module."""
    schema: dict[str, Any] = json.loads((Path(__file__).parent / "plan.schema.json").read_text(encoding="utf-8"))
    return schema

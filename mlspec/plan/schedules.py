"""Schedules as the plan sees them: re-armed in place, so a change to a schedule alone runs nothing."""

from __future__ import annotations

from typing import Any

from mlspec.graph import Node
from mlspec.plan.diff import field_changes

RESCHEDULE = "reschedule"  # the verb of an update that changes the schedule only: nothing runs now


def desired_schedule(node: Node) -> dict[str, Any] | None:
    """The node's schedule as recorded once armed (a record's outputs["schedule"]), or None without one."""
    schedule = getattr(node.resource, "schedule", None)
    return None if schedule is None else schedule.model_dump(mode="json", exclude_defaults=True)


def schedule_changes(applied: dict[str, Any] | None, desired: dict[str, Any] | None) -> list[str]:
    """'schedule added', 'schedule removed', 'schedule.cron: 0 3 * * * → 0 4 * * *'."""
    if applied == desired:
        return []
    if applied is None:
        return ["schedule added"]
    if desired is None:
        return ["schedule removed"]
    return field_changes(applied, desired, "schedule.")

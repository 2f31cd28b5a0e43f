"""Plans as text (Terraform-like symbols) and Markdown (pull-request comments)."""

from __future__ import annotations

from mlspec.plan import Change, Plan
from mlspec.render.style import Style

SYMBOLS = {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "noop": " "}
COLOURS = {"create": "green", "update": "yellow", "replace": "magenta", "delete": "red"}


def _line(change: Change, width: int, style: Style) -> str:
    symbol = SYMBOLS[change.action]
    verb = change.verb if change.action in ("update", "replace") else ""
    reasons = "; ".join(change.reasons)
    detail = f"{verb}: {reasons}" if verb and reasons else (verb or reasons)
    head = style(f"{symbol:>3} {_name(change):<{width}}", COLOURS.get(change.action, ""))
    return f"{head}  {detail}".rstrip()


def _name(change: Change) -> str:
    """The resource, with the version a model will have: `model/iris-clf:2`."""
    return f"{change.id}:{change.version}" if change.version is not None else change.id


def plan_text(plan: Plan, style: Style) -> str:
    changed = [c for c in plan.changes if c.action != "noop"]
    unchanged = [c.id for c in plan.changes if c.action == "noop"]
    width = max((len(_name(c)) for c in changed), default=0)
    lines = [_line(c, width, style) for c in changed]
    if unchanged:
        shown = ", ".join(unchanged[:6]) + (f" and {len(unchanged) - 6} more" if len(unchanged) > 6 else "")
        lines.append(style(f"    {shown}: no changes", "dim"))
    lines += [style(f"error: {b.id}: {b.message}", "red") for b in plan.blockers]
    lines.append(summary(plan))
    return "\n".join(lines)


def summary(plan: Plan) -> str:
    if plan.blockers:
        return f"Plan cannot be applied: {len(plan.blockers)} error{'s' if len(plan.blockers) != 1 else ''} above."
    if not plan.has_changes:
        return "No changes. Everything is up to date."
    registrations = plan.registrations
    versions = (f", {registrations} model version{'s' if registrations != 1 else ''} to register"
                if registrations else "")
    return (f"Plan: {plan.count('create')} to create, {plan.count('update')} to update, "
            f"{plan.count('replace')} to replace, {plan.count('delete')} to delete{versions}.")


def plan_markdown(plan: Plan) -> str:
    rows = ["| | resource | why |", "|---|---|---|"]
    for c in plan.changes:
        if c.action != "noop":
            rows.append(f"| `{SYMBOLS[c.action]}` | `{_name(c)}` | {'; '.join(c.reasons)} |")
    errors = [f"- error: `{b.id}`: {b.message}" for b in plan.blockers]
    if not plan.has_changes:
        return "\n".join([f"**{summary(plan)}**", *errors])
    return "\n".join([f"**{summary(plan)}**", *errors, "", *rows])


def drift_text(plan: Plan, style: Style) -> str:
    """The changes a refresh found (what runs differs from what was recorded), as `up` will make them."""
    drifted = [c for c in plan.changes if c.drifted]
    if not drifted:
        return "No drift: what runs matches the recorded state."
    width = max(len(_name(c)) for c in drifted)
    lines = [_line(c, width, style) for c in drifted]
    return "\n".join([*lines, f"Drift in {len(drifted)} resource(s); `mlspec up` repairs it."])

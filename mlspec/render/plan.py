"""Plans as text: Terraform-like symbols, a reason per resource and a summary line."""

from __future__ import annotations

from mlspec.plan import Change, Plan
from mlspec.plan.labels import RELABEL
from mlspec.plan.report import PlanReport
from mlspec.plan.traffic import SHIFT_TRAFFIC
from mlspec.render.style import Style

SYMBOLS = {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "noop": " "}
COLOURS = {"create": "green", "update": "yellow", "replace": "magenta", "delete": "red"}


def _line(change: Change, width: int, style: Style) -> str:
    symbol = SYMBOLS[change.action]
    verb = change.verb if change.action in ("update", "replace") else ""
    reasons = "; ".join(change.reasons)
    detail = f"{verb}: {reasons}" if verb and reasons else (verb or reasons)
    head = style(f"{symbol:>3} {resource_name(change):<{width}}", COLOURS.get(change.action, ""))
    return f"{head}  {detail}".rstrip()


def resource_name(change: Change) -> str:
    """The resource, with the version a model will have: `model/iris-clf:2`."""
    return f"{change.id}:{change.version}" if change.version is not None else change.id


def plan_text(plan: Plan, style: Style) -> str:
    changed = [c for c in plan.changes if c.action != "noop"]
    unchanged = [c.id for c in plan.changes if c.action == "noop"]
    width = max((len(resource_name(c)) for c in changed), default=0)
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


def drift_text(plan: Plan, style: Style) -> str:
    """The changes a refresh found (what runs differs from what was recorded), as `up` will make them."""
    drifted = [c for c in plan.changes if c.drifted]
    if not drifted:
        return "No drift: what runs matches the recorded state."
    width = max(len(resource_name(c)) for c in drifted)
    lines = [_line(c, width, style) for c in drifted]
    return "\n".join([*lines, f"Drift in {len(drifted)} resource(s); `mlspec up` repairs it."])


_ENDPOINT_WORDS = {"create": "is created", "delete": "is deleted", "redeploy": "redeploys", "rescore": "rescores",
                   RELABEL: "is relabelled"}


def ml_summary(report: PlanReport) -> str:
    """The plan in ML terms, one line: '2 jobs retrain, 2 model versions to register, endpoint iris redeploys
    (traffic shifts)'; '' when nothing of that kind changes."""
    changed = [c for c in report.plan.changes if c.action != "noop"]
    new_jobs = sum(c.kind == "Job" and c.action == "create" for c in changed)
    retrained = sum(c.kind == "Job" and c.action in ("update", "replace") and c.verb != RELABEL for c in changed)
    jobs = new_jobs + retrained
    shifted = {s.endpoint for s in report.traffic}
    parts = [_count(retrained, "job retrains", "jobs retrain")] if retrained else []
    parts += [_count(new_jobs, "new job trains", "new jobs train")] if new_jobs else []
    if report.plan.registrations:
        parts.append(_count(report.plan.registrations, "model version to register", "model versions to register"))
    for c in changed:
        if c.kind == "Endpoint":
            name = c.id.split("/", 1)[1]
            if c.verb == SHIFT_TRAFFIC:
                parts.append(f"traffic shifts on endpoint {name}")
                continue
            what = _ENDPOINT_WORDS.get(c.action, "") or _ENDPOINT_WORDS.get(c.verb, "changes")
            moved = name in shifted and c.action in ("update", "replace")
            parts.append(f"endpoint {name} {what}" + (" (traffic shifts)" if moved else ""))
    others = len(changed) - jobs - sum(c.kind in ("Model", "Endpoint") for c in changed)
    if others and parts:
        parts.append(_count(others, "other change", "other changes"))
    return ", ".join(parts)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def report_text(report: PlanReport, style: Style) -> str:
    """The plan, headed by what it compares with when that is not the workspace, and the generated resources."""
    lines = []
    if report.base.against != "workspace":
        lines.append(style(f"Against {report.base.description}:", "dim"))
    lines.append(plan_text(report.plan, style))
    if report.generated:
        lines.append(f"\nGenerated {report.target} resources:")
        for item in report.generated:
            data = item.as_dict()
            fields = f"  ({', '.join(data['fields'])})" if data.get("fields") else ""
            lines.append(style(f"{SYMBOLS.get(data['action'], '?'):>3} {data['type']} {data['name']}{fields}",
                               COLOURS.get(data["action"], "")))
    return "\n".join(lines)

"""A plan as a pull-request comment: the summary first, what changes in ML terms, details folded away."""

from __future__ import annotations

import re
from collections.abc import Iterable

from mlspec.plan import Change
from mlspec.plan.labels import RELABEL
from mlspec.plan.report import PlanReport
from mlspec.render.plan import SYMBOLS, ml_summary, resource_name, summary
from mlspec.render.plan_mermaid import mermaid

MARKER = "<!-- mlspec-plan -->"  # CI finds its earlier comment by this line and updates it instead of adding one
_UNCHANGED_SHOWN = 8
_LABELS = ("metadata.labels", "metadata.annotations")  # an object's own metadata, not its pod template's

# The order reviewers read a change in: what trains, what it registers, what serves, then the rest.
# Reasons another bullet already gives: a registration's job, a new job's training.
_SAID = re.compile(r"job/\S+ retrains|register from job/\S+|train")
_KIND_ORDER = ("Job", "Model", "Endpoint", "Data", "Environment", "Compute")
_WORDS = {"create": "Create", "delete": "Delete", "replace": "Replace"}


def report_markdown(report: PlanReport) -> str:
    plan = report.plan
    target = f", target `{report.target}`" if report.target else ""
    lines = [MARKER, f"### {_headline(report)}", "", f"{summary(plan)} Planned against {_base(report)}{target}."]
    lines += [f"- :x: `{b.id}`: {b.message}" for b in plan.blockers]
    if report.has_changes:
        lines += ["", *_highlights(report)]
    changed = [c for c in plan.changes if c.action != "noop"]
    if changed:
        lines += _details(f"All changes ({len(changed)})", _table(changed, plan.changes))
    if report.generated:
        lines += _details(f"Generated {report.target} resources ({_counts(g.action for g in report.generated)})",
                          _generated(report))
    if changed:
        lines += _details("Graph of what changes", ["```mermaid", *mermaid(changed, report.edges), "```"])
    return "\n".join(lines).rstrip() + "\n"


def _headline(report: PlanReport) -> str:
    if not report.plan.has_changes and report.generated:
        return f"mlspec plan: no spec changes; {len(report.generated)} generated resource(s) change"
    ml_terms = ml_summary(report)
    return f"mlspec plan: {ml_terms}" if ml_terms else f"mlspec plan: {summary(report.plan).rstrip('.')}"


def _base(report: PlanReport) -> str:
    base = report.base
    if base.against == "git":
        how = " (where this branch left it)" if base.details.get("merge_base") else ""
        return f"`{base.details.get('ref', '?')}` at `{str(base.details.get('commit', '?'))[:7]}`{how}"
    return base.description


def _highlights(report: PlanReport) -> list[str]:
    """One bullet per group of resources that change alike, in the kind order above."""
    groups: dict[tuple[int, str, str], list[str]] = {}
    for change in report.plan.changes:
        if change.action == "noop":
            continue
        kind_rank = _KIND_ORDER.index(change.kind) if change.kind in _KIND_ORDER else len(_KIND_ORDER)
        what = _what(change)
        why = "; ".join(r for r in change.reasons if not _SAID.fullmatch(r))
        groups.setdefault((kind_rank, what, why), []).append(_label(change))
    bullets = []
    for (_, what, why), names in sorted(groups.items(), key=lambda item: item[0][0]):
        shown = ", ".join(f"`{n}`" for n in names)
        bullets.append(f"- **{what}** {shown}" + (f": {why}" if why else ""))
    return bullets


def _what(change: Change) -> str:
    """The verb a reviewer reads: Retrain, Register, Redeploy, Shift traffic, Create, Delete, Relabel."""
    if change.kind == "Model" and change.registers:
        return "Register a new version of"
    if change.kind == "Job" and change.action == "create":
        return "Train new job"
    if change.action in _WORDS:
        return f"{_WORDS[change.action]} {change.kind.lower()}"
    verb = change.verb or "update"
    return verb[:1].upper() + verb[1:] if verb != RELABEL else "Relabel"


def _label(change: Change) -> str:
    name = change.id.split("/", 1)[1]
    return f"{name}:{change.version}" if change.version is not None else name


def _table(changed: list[Change], every: list[Change]) -> list[str]:
    rows = ["| | resource | action | why |", "|---|---|---|---|"]
    for c in changed:
        action = c.verb if c.action in ("update", "replace") and c.verb else c.action
        rows.append(f"| `{SYMBOLS[c.action]}` | `{resource_name(c)}` | {action} | {_cell('; '.join(c.reasons))} |")
    unchanged = [c.id for c in every if c.action == "noop"]
    if unchanged:
        shown = ", ".join(f"`{u}`" for u in unchanged[:_UNCHANGED_SHOWN])
        more = f" and {len(unchanged) - _UNCHANGED_SHOWN} more" if len(unchanged) > _UNCHANGED_SHOWN else ""
        rows += ["", f"Unchanged: {shown}{more}."]
    return rows


def _generated(report: PlanReport) -> list[str]:
    rows = ["| | type | name | fields |", "|---|---|---|---|"]
    relabelled = []
    for item in report.generated or []:
        data = item.as_dict()
        if data["action"] == "update" and data.get("fields") and all(f.startswith(_LABELS) for f in data["fields"]):
            relabelled.append(f"{data['type'].rsplit(':', 1)[-1]} `{data['name']}`")
            continue
        fields = ", ".join(f"`{f}`" for f in data.get("fields", ()))
        rows.append(f"| `{SYMBOLS.get(data['action'], '?')}` | `{data['type']}` | `{data['name']}` | {fields} |")
    if relabelled:  # Pulumi updates their labels in place; listing each would bury what really changes
        shown = ", ".join(relabelled[:_UNCHANGED_SHOWN])
        more = f" and {len(relabelled) - _UNCHANGED_SHOWN} more" if len(relabelled) > _UNCHANGED_SHOWN else ""
        rows += ["", f"Labels only, updated in place: {shown}{more}."]
    return rows


def _counts(actions: Iterable[str]) -> str:
    tally: dict[str, int] = {}
    for action in actions:
        tally[action] = tally.get(action, 0) + 1
    return ", ".join(f"{n} to {a}" for a, n in tally.items())


def _details(title: str, body: list[str]) -> list[str]:
    return ["", "<details>", f"<summary>{title}</summary>", "", *body, "", "</details>"]


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")

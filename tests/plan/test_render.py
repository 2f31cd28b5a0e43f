"""Plan rendering: symbols, reasons and the summary line; JSON and Markdown forms."""

from __future__ import annotations

import json

from mlspec.plan import Change, Plan
from mlspec.plan.report import Base, PlanReport
from mlspec.render.plan import plan_text
from mlspec.render.plan_json import plan_document
from mlspec.render.plan_markdown import MARKER, report_markdown
from mlspec.render.style import Style

PLAN = Plan([
    Change("job/train", "Job", "update", ("files changed (src/train.py)",), "retrain"),
    Change("model/iris-clf", "Model", "update", ("job/train retrains",), "register"),
    Change("compute/cpu", "Compute", "noop"),
    Change("compute/gpu", "Compute", "create"),
    Change("data/old", "Data", "delete", ("no longer in the spec",)),
])


def test_text_has_symbols_reasons_and_summary() -> None:
    text = plan_text(PLAN, Style(False))
    lines = text.splitlines()
    assert lines[0].startswith("  ~ job/train") and lines[0].endswith("retrain: files changed (src/train.py)")
    assert "  + compute/gpu" in text
    assert "  - data/old" in text and "no longer in the spec" in text
    assert "compute/cpu: no changes" in text
    assert lines[-1] == "Plan: 1 to create, 2 to update, 0 to replace, 1 to delete."


def test_colour_only_when_asked() -> None:
    assert "\033[" not in plan_text(PLAN, Style(False))
    assert "\033[33m" in plan_text(PLAN, Style(True))


def report(plan: Plan) -> PlanReport:
    return PlanReport(plan, Base("workspace", "the workspace `.mlspec`"), "local",
                      [("job/train", "model/iris-clf"), ("compute/cpu", "job/train")])


def test_json_and_markdown() -> None:
    data = json.loads(json.dumps(plan_document(report(PLAN))))
    assert data["schema_version"] == 1
    assert data["summary"] == {"create": 1, "update": 2, "replace": 0, "delete": 1, "noop": 1}
    assert next(c for c in data["changes"] if c["id"] == "job/train")["depends_on"] == ["compute/cpu"]
    markdown = report_markdown(report(PLAN))
    assert markdown.startswith(MARKER + "\n### mlspec plan: 1 job retrains, 2 other changes\n")
    assert "| `~` | `job/train` | retrain | files changed (src/train.py) |" in markdown
    assert "- **Retrain** `train`: files changed (src/train.py)" in markdown
    assert '  job_train["~ job/train"]:::update' in markdown and "  job_train --> model_iris_clf" in markdown
    assert "compute_cpu" not in markdown  # unchanged resources stay out of the graph
    empty = report_markdown(report(Plan([])))
    assert "### mlspec plan: No changes. Everything is up to date" in empty and "<details>" not in empty

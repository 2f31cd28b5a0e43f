"""Plan rendering: symbols, reasons and the summary line; JSON and Markdown forms."""

from __future__ import annotations

import json

from mlspec.plan import Change, Plan
from mlspec.render.plan import plan_markdown, plan_text
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


def test_json_and_markdown() -> None:
    data = json.loads(json.dumps(PLAN.as_dict()))
    assert data["summary"] == {"create": 1, "update": 2, "replace": 0, "delete": 1, "noop": 1}
    markdown = plan_markdown(PLAN)
    assert "| `~` | `job/train` | files changed (src/train.py) |" in markdown
    assert plan_markdown(Plan([])).startswith("**No changes")

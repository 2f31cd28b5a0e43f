"""Schedules: outside every content hash, so adding, changing or removing one alone plans an in-place reschedule."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from mlspec.graph import load_graph
from mlspec.plan import plan, records_of
from mlspec.render.plan import plan_text
from mlspec.render.style import Style

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris"


@pytest.fixture
def iris(tmp_path: Path) -> Path:
    target = tmp_path / "iris"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".mlspec"))
    return target


def _schedule(spec: Path, schedule: dict[str, object] | None, name: str = "train") -> None:
    path = spec / "mlspec.yaml"
    docs = list(yaml.safe_load_all(path.read_text()))
    job = next(d for d in docs if d["kind"] == "Job" and d["name"] == name)
    job.pop("schedule", None)
    if schedule is not None:
        job["schedule"] = schedule
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def test_a_schedule_is_not_part_of_the_hash(iris: Path) -> None:
    before = {n.id: n.hash for n in load_graph([iris]).nodes.values()}
    _schedule(iris, {"cron": "0 3 * * *", "timezone": "Europe/Paris"})
    assert {n.id: n.hash for n in load_graph([iris]).nodes.values()} == before


@pytest.mark.parametrize(("before", "after", "reason"), [
    (None, {"every": "1h"}, "schedule added"),
    ({"every": "1h"}, None, "schedule removed"),
    ({"cron": "0 3 * * *"}, {"cron": "0 4 * * *", "missed": "skip"},
     "schedule.cron: 0 3 * * * → 0 4 * * *"),
])
def test_a_schedule_change_alone_reschedules_and_retrains_nothing(iris: Path, before: dict[str, object] | None,
                                                                  after: dict[str, object] | None,
                                                                  reason: str) -> None:
    _schedule(iris, before)
    state = records_of(load_graph([iris]))
    _schedule(iris, after)
    result = plan(load_graph([iris]), state)
    changed = [c for c in result.changes if c.action != "noop"]
    assert [(c.id, c.action, c.verb) for c in changed] == [("job/train", "update", "reschedule")]
    assert changed[0].reasons[0] == reason
    assert result.registrations == 0  # no model version, no redeploy downstream
    assert "~ job/train  reschedule: " + reason in plan_text(result, Style(False))


def test_an_unchanged_schedule_plans_nothing(iris: Path) -> None:
    _schedule(iris, {"cron": "0 3 * * *", "timezone": "Europe/Paris"})
    graph = load_graph([iris])
    assert not plan(graph, records_of(graph)).has_changes


@pytest.mark.parametrize(("example", "job"), [("pipeline", "wine"), ("automl", "wine-automl")])
def test_a_pipeline_s_or_an_automl_job_s_schedule_alone_reschedules_them(tmp_path: Path, example: str,
                                                                          job: str) -> None:
    spec = tmp_path / example
    shutil.copytree(EXAMPLE.parent / example, spec, ignore=shutil.ignore_patterns(".mlspec"))
    before = load_graph([spec])
    state = records_of(before)
    _schedule(spec, {"cron": "0 3 * * *", "timezone": "Europe/Paris"}, job)
    after = load_graph([spec])
    assert {n.id: n.hash for n in after.nodes.values()} == {n.id: n.hash for n in before.nodes.values()}
    result = plan(after, state)
    changed = [(c.id, c.action, c.verb, c.reasons) for c in result.changes if c.action != "noop"]
    assert changed == [(f"job/{job}", "update", "reschedule", ("schedule added",))]  # no step runs, no search
    assert result.registrations == 0
    _schedule(spec, {"cron": "0 4 * * *", "timezone": "Europe/Paris"}, job)
    assert plan(load_graph([spec]), records_of(after)).get(f"job/{job}").reasons == (  # type: ignore[union-attr]
        "schedule.cron: 0 3 * * * → 0 4 * * *",)

"""Schedules: each mistake refused at its line saying what to write, and the timetable a schedule keeps (DST,
periods, start and end)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mlspec.graph import analyze
from mlspec.spec.capabilities import EVERYWHERE, TABLE, row_for
from mlspec.spec.schedule import Schedule

PARIS = ZoneInfo("Europe/Paris")
SPEC = """\
kind: Workspace
name: nightly
---
kind: Job
name: train
command: python train.py
schedule:
  {schedule}
"""


def _errors(tmp_path: Path, schedule: str, target: str | None = None) -> list[tuple[int, str, str]]:
    (tmp_path / "mlspec.yaml").write_text(SPEC.format(schedule=schedule.replace("\n", "\n  ")))
    found = analyze([tmp_path], target)  # type: ignore[arg-type]
    return [(d.span.line if d.span else 0, d.path, d.summary + " " + (d.hint or ""))
            for d in found.diagnostics.items if d.severity == "error"]


@pytest.mark.parametrize(("schedule", "line", "field", "says"), [
    ("cron: '0 25 * * *'", 8, "schedule.cron", "is not a valid cron expression"),
    ("cron: '0 3 * * * *'", 8, "schedule.cron", "has 6 fields; a cron expression has five fields"),
    ("cron: '0 3 L * *'", 8, "schedule.cron", "uses L, which Kubernetes CronJobs do not read"),
    ("every: 30s", 8, "schedule.every", "shorter than a minute; use '1m' or more"),
    ("cron: '0 3 * * *'\ntimezone: Europe/Pari", 9, "schedule.timezone", "did you mean 'Europe/Paris'?"),
    ("every: 1h\nstart_time: 2026-06-02T00:00:00\nend_time: 2026-06-01T00:00:00", 10, "schedule.end_time",
     "is not after start_time"),
    ("cron: '0 3 * * *'\nevery: 1h", 7, "schedule", "exactly one of them"),
    ("every: 1h\nmissed: later", 9, "schedule.missed", "run_once"),
])
def test_each_mistake_is_refused_at_its_line(tmp_path: Path, schedule: str, line: int, field: str,
                                             says: str) -> None:
    errors = _errors(tmp_path, schedule)
    assert len(errors) == 1, errors
    assert errors[0][:2] == (line, field) and says in errors[0][2], errors


def test_a_valid_schedule_passes_and_docker_refuses_it_naming_the_targets_that_honour_it(tmp_path: Path) -> None:
    assert _errors(tmp_path, "cron: '0 3 * * *'\ntimezone: Europe/Paris\nmissed: skip") == []
    (line, field, says), = _errors(tmp_path, "every: 1h", "docker")
    assert (line, field) == (7, "schedule") and "no scheduler" in says and "local and kubernetes" in says


def test_a_daily_cron_follows_the_zone_across_both_dst_changes() -> None:
    nightly = Schedule(cron="30 2 * * *", timezone="Europe/Paris")
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    # 29 March 2026: Paris skips 02:00-03:00; the run whose time never comes runs when the clock resumes.
    spring = nightly.next_after(datetime(2026, 3, 28, 12, tzinfo=PARIS), anchor)
    assert spring == datetime(2026, 3, 29, 3, 0, tzinfo=PARIS)
    assert nightly.next_after(spring, anchor) == datetime(2026, 3, 30, 2, 30, tzinfo=PARIS)
    # 25 October 2026: 02:30 happens twice; it runs once, at the first (UTC+2), then the next day at UTC+1.
    autumn = nightly.next_after(datetime(2026, 10, 24, 12, tzinfo=PARIS), anchor)
    assert autumn == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert nightly.next_after(autumn, anchor) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


def test_every_counts_from_start_time_or_from_when_it_was_armed_and_stops_at_end_time() -> None:
    armed = datetime(2026, 6, 1, 10, 7, tzinfo=UTC)
    hourly = Schedule(every=3600)
    assert hourly.next_after(armed, armed) == datetime(2026, 6, 1, 11, 7, tzinfo=UTC)  # `up` has just run it
    window = Schedule(every="1h", start_time=datetime(2026, 6, 1, 12), end_time=datetime(2026, 6, 1, 14, 30),
                      timezone="Europe/Paris")
    times, moment = [], datetime(2026, 6, 1, 8, tzinfo=UTC)
    while (moment := window.next_after(moment, armed)) is not None:
        times.append(moment)
    # 12:00, 13:00 and 14:00 Paris (UTC+2), nothing from 14:30 on.
    assert times == [datetime(2026, 6, 1, hour, tzinfo=UTC) for hour in (10, 11, 12)]


def test_a_cron_schedule_waits_for_start_time() -> None:
    later = Schedule(cron="0 * * * *", start_time=datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    assert later.next_after(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)) == \
        datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


KINDS = """\
kind: Workspace
name: nightly
---
kind: Data
name: rows
path: rows.csv
---
kind: Job
name: flow
type: pipeline
jobs:
  train: {command: python train.py}
schedule: {every: 1h}
---
kind: Job
name: search
type: automl
task: classification
training_data: data:rows
target_column_name: y
schedule: {every: 1h}
"""


@pytest.fixture
def kinds_compiled(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As where pipelines and AutoML jobs compile for every target: their fields' own rows are what speak."""
    for kind in ("PipelineJob", "AutoMLJob"):
        monkeypatch.setitem(TABLE[kind], "", EVERYWHERE)
    row_for.cache_clear()
    yield
    row_for.cache_clear()


@pytest.mark.usefixtures("kinds_compiled")
@pytest.mark.parametrize(("target", "says"), [
    ("docker", {"flow": "a Docker host has no scheduler", "search": "a Docker host has no scheduler"}),
    ("kubernetes", {"flow": "a CronJob would train on the same rows every time",
                    "search": "a CronJob would search the same rows every time"}),
])
def test_scheduled_pipelines_and_automl_jobs_run_on_the_local_target_alone(tmp_path: Path, target: str,
                                                                          says: dict[str, str]) -> None:
    (tmp_path / "rows.csv").write_text("x,y\n1,0\n")
    (tmp_path / "mlspec.yaml").write_text(KINDS)
    assert [d for d in analyze([tmp_path], "local").diagnostics.items if d.severity == "error"] == []
    found = analyze([tmp_path], target)  # type: ignore[arg-type]
    refused = {(d.span.line if d.span else 0, d.summary + " " + (d.hint or ""))
               for d in found.diagnostics.items if d.severity == "error" and d.path == "schedule"}
    lines = [n for n, text in enumerate(KINDS.splitlines(), 1) if text.startswith("schedule:")]
    assert sorted(line for line, _ in refused) == lines, refused  # each at its schedule's line
    for line, text in refused:
        assert says["flow" if line == lines[0] else "search"] in text and "local target" in text, text

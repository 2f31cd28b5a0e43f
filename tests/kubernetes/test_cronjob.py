"""A scheduled job on the kubernetes target: a valid CronJob beside the job's Job, running its pod template on the
schedule's timetable (Forbid, the missed policy's deadline, suspended outside start/end), its runs tagged."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from mlspec.backends.pulumi.kubernetes.cronjobs import cron_schedule, suspended
from mlspec.graph import analyze
from mlspec.spec.schedule import SCHEDULED_TAG, Schedule
from tests.kubernetes.conftest import SPECS
from tests.kubernetes.consistency import problems
from tests.kubernetes.test_batch import KUBERNETES_VERSION, _built

Object = dict[str, Any]


@pytest.fixture()
def spec(tmp_path: Path) -> Path:
    folder = tmp_path / "distributed"
    shutil.copytree(SPECS["distributed"], folder, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    return folder


def _one(objects: list[Object], kind: str, job: str) -> Object:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["labels"].get("mlspec.io/job") == job]
    return found


def test_a_scheduled_job_is_a_valid_cronjob_running_the_job_s_pods(spec: Path) -> None:
    objects, secrets = _built(spec)
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    assert problems(objects, external_secrets=secrets) == []  # selectors, volumes, ConfigMap keys
    job, cron = _one(objects, "Job", "evaluate"), _one(objects, "CronJob", "evaluate")
    assert cron["metadata"]["name"] == job["metadata"]["name"] and len(cron["metadata"]["name"]) <= 52
    assert cron["spec"]["schedule"] == "0 3 * * *" and cron["spec"]["timeZone"] == "Europe/Paris"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"  # a run due while one goes is not started beside it
    assert cron["spec"]["startingDeadlineSeconds"] == 60  # missed: skip
    assert cron["spec"]["suspend"] is False
    template = cron["spec"]["jobTemplate"]["spec"]
    assert template["template"]["spec"]["volumes"] == job["spec"]["template"]["spec"]["volumes"]
    (train,) = template["template"]["spec"]["containers"]
    assert train["command"][3] == "/etc/mlspec/scheduled.json"
    config = next(o for o in objects
                  if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{cron['metadata']['name']}-run")
    scheduled = json.loads(config["data"]["scheduled.json"])
    assert scheduled["tags"][SCHEDULED_TAG] == "true"
    assert {k: v for k, v in scheduled.items() if k != "tags"} == \
        {k: v for k, v in json.loads(config["data"]["node-0.json"]).items() if k != "tags"}
    # The job that is not scheduled has no CronJob.
    assert not [o for o in objects if o["kind"] == "CronJob" and o["metadata"]["labels"].get("mlspec.io/job")
                == "train-ddp"]


@pytest.mark.parametrize(("every", "expected"), [
    ("1m", "* * * * *"), ("15m", "*/15 * * * *"), ("1h", "0 * * * *"), ("6h", "0 */6 * * *"), ("1d", "0 0 * * *"),
    ("90m", "@every 5400s"), ("7m", "@every 420s")])
def test_a_period_is_cron_where_it_divides_an_hour_or_a_day(every: str, expected: str) -> None:
    assert cron_schedule(Schedule(every=every)) == expected


def test_a_cronjob_outside_its_window_is_suspended() -> None:
    window = Schedule(cron="0 3 * * *", start_time=datetime(2026, 6, 1), end_time=datetime(2026, 7, 1))
    assert suspended(window, datetime(2026, 5, 31, tzinfo=UTC))
    assert not suspended(window, datetime(2026, 6, 15, tzinfo=UTC))
    assert suspended(window, datetime(2026, 7, 1, tzinfo=UTC))


def test_a_scheduled_job_on_several_nodes_and_a_scheduled_batch_endpoint_are_refused(spec: Path) -> None:
    text = (spec / "mlspec.yaml").read_text()
    text = text.replace("distribution: {type: pytorch, process_count_per_instance: 1}\n",
                        "distribution: {type: pytorch, process_count_per_instance: 1}\nschedule: {every: 1d}\n")
    text = text.replace("max_concurrency: 2\n", "max_concurrency: 2\nschedule: {every: 1d}\n")
    (spec / "mlspec.yaml").write_text(text)
    errors = [d for d in analyze([spec], "kubernetes").diagnostics.items if d.severity == "error"]
    assert sorted(d.span.line if d.span else 0 for d in errors) == [_line(text, 1), _line(text, 2)]
    assert {d.path for d in errors} == {"schedule"}
    assert any("2 nodes" in d.summary for d in errors)
    assert any("baked into the run's image" in d.summary for d in errors)


def _line(text: str, occurrence: int) -> int:
    lines = [number for number, line in enumerate(text.splitlines(), 1) if line == "schedule: {every: 1d}"]
    return lines[occurrence - 1]

"""Schedules end to end on the local engine: `up` arms them, the supervisor really fires a job (a new MLflow run
tagged as scheduled, a new model version from the rows added since `up`) and a batch endpoint (new files scored),
the next plan sees no change, `status` shows the timetable, and removing `schedule:` disarms it.

The supervisor's clock runs 10 times faster (the MLSPEC_TEST_SCHEDULE_SPEED test hook): `every: 1m` fires every
six seconds, time enough for the test to add data before the first scheduled runs start."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.schedule_state import schedule_of
from mlspec.backends.local.scheduler import SPEED_VAR
from mlspec.backends.local.state import StateStore
from mlspec.spec.schedule import SCHEDULED_TAG
from tests.local.conftest import EXAMPLES, mlspec, status, wait_for

pytestmark = pytest.mark.e2e

SPEC = """\
kind: Workspace
name: scheduled
---
kind: Data
name: history
path: history/
---
kind: Data
name: incoming
path: incoming/
---
kind: Job
name: train
code: src/
command: {python} train.py --data ${{{{inputs.data}}}}/rows.csv --algo logistic --model-dir ${{{{outputs.model}}}}
inputs: {{data: data:history}}
outputs: {{model: {{type: model, register_as: iris-clf, flavor: sklearn}}}}
{schedule}
---
kind: Endpoint
name: nightly
type: batch
model: iris-clf@latest
input: data:incoming
output: {{path: predictions, mode: per_file}}
schedule: {{every: 1m}}
"""
EVERY_MINUTE = "schedule: {every: 1m}"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv(SPEED_VAR, "10")  # inherited by the supervisor `up` starts
    root = tmp_path / "scheduled"
    shutil.copytree(EXAMPLES / "iris" / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    lines = (EXAMPLES / "iris" / "data" / "iris.csv").read_text().splitlines()
    (root / "history").mkdir(parents=True)
    (root / "history" / "rows.csv").write_text("\n".join(lines[:121]) + "\n")
    (root / "incoming").mkdir()
    features = [",".join(line.split(",")[:4]) for line in lines]  # what is scored has no label column
    (root / "incoming" / "monday.csv").write_text("\n".join(features[:21]) + "\n")
    (root / "mlspec.yaml").write_text(SPEC.format(python=sys.executable, schedule=EVERY_MINUTE))
    yield root
    mlspec("down", str(root), "--yes", check=False)


def test_the_supervisor_fires_scheduled_runs_that_change_nothing_up_would_redo(project: Path) -> None:
    from mlspec.runtime.tracking import client

    mlspec("up", str(project), "--yes")
    paths = WorkspacePaths(project / ".mlspec")
    store = StateStore(paths.state_db)
    trained = store.records()["job/train"].outputs
    store.close()
    assert trained["models"] == {"iris-clf": 1}
    # New rows arrive after `up`: every scheduled run reads the source as it is when it starts.
    lines = (EXAMPLES / "iris" / "data" / "iris.csv").read_text().splitlines()
    (project / "history" / "rows.csv").write_text("\n".join(lines) + "\n")
    (project / "incoming" / "tuesday.csv").write_text(
        "\n".join(",".join(line.split(",")[:4]) for line in [lines[0], *lines[100:130]]) + "\n")

    registry = client(paths.tracking_uri)

    def retrained() -> bool:
        versions = registry.search_model_versions("name='iris-clf'")
        return any(int(v.version) >= 2 for v in versions)

    wait_for(retrained, 120)
    newest = max(registry.search_model_versions("name='iris-clf'"), key=lambda v: int(v.version))
    run = registry.get_run(newest.run_id)
    assert run.data.tags[SCHEDULED_TAG] == "true" and run.info.status == "FINISHED"
    assert newest.run_id != trained["run_id"]

    def scored() -> bool:
        store = StateStore(paths.state_db)
        try:
            row = schedule_of(store, "endpoint/nightly")
            return row is not None and row.last_outcome == "succeeded" and (project / "predictions" /
                                                                            "tuesday.csv").exists()
        finally:
            store.close()

    wait_for(scored, 120)
    assert len((project / "predictions" / "tuesday.csv").read_text().splitlines()) == 31  # a header, 30 rows

    # Nothing a scheduled run did is a change: with the data as `up` hashed it, the plan is empty (new data is a
    # new Data version, which `up` would train on as it always does), and the job's record is as `up` left it.
    (project / "history" / "rows.csv").write_text("\n".join(lines[:121]) + "\n")
    (project / "incoming" / "tuesday.csv").unlink()
    assert "No changes" in mlspec("plan", str(project)).stdout
    shown = status(project)
    assert shown["resources"]["job/train"]["outputs"]["run_id"] == trained["run_id"]
    timetable = shown["schedules"]["job/train"]
    assert timetable["next_run"] and timetable["last_run"] and timetable["runs"] >= 1
    assert "schedules:" in mlspec("status", str(project)).stdout

    # Removing `schedule:` disarms it in place: nothing retrains.
    (project / "mlspec.yaml").write_text(SPEC.format(python=sys.executable, schedule=""))
    applied = mlspec("up", str(project), "--yes").stdout
    assert "reschedule: schedule removed" in applied and "rescheduled" in applied
    shown = status(project)
    assert "job/train" not in shown["schedules"] and "endpoint/nightly" in shown["schedules"]
    assert shown["resources"]["job/train"]["outputs"]["run_id"] == trained["run_id"]

"""A scheduled pipeline end to end on the local engine: `up` runs it and arms its schedule, the supervisor fires it
as a process of its own, its train step reads the rows added since `up` and registers a new model version from a
new MLflow run tagged as scheduled, while the step whose inputs did not change is reused; `status` shows the
timetable, and the next plan sees no change.

The supervisor's clock runs 10 times faster (the MLSPEC_TEST_SCHEDULE_SPEED test hook): `every: 1m` fires every
six seconds, time enough for the test to add rows before the first scheduled run starts."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.schedule_state import schedule_of, summary
from mlspec.backends.local.scheduler import SPEED_VAR
from mlspec.backends.local.state import StateStore
from mlspec.spec.schedule import SCHEDULED_TAG
from tests.local.conftest import EXAMPLES, mlspec, wait_for

pytestmark = pytest.mark.e2e

SPEC = """\
kind: Workspace
name: scheduled-flow
---
kind: Data
name: history
path: history/
---
kind: Job
name: flow
type: pipeline
inputs: {{rows: data:history}}
outputs: {{model: {{type: model, register_as: iris-clf, flavor: sklearn}}}}
jobs:
  settings:
    command: {python} -c "import sys, pathlib; pathlib.Path(sys.argv[1], 'C').write_text('1.0')" ${{{{outputs.out}}}}
    outputs: {{out: {{type: uri_folder}}}}
  train:
    code: src/
    command: {python} train.py --data ${{{{inputs.data}}}}/rows.csv --algo logistic --model-dir ${{{{outputs.model}}}}
    inputs: {{data: "${{{{parent.inputs.rows}}}}", settings: "${{{{parent.jobs.settings.outputs.out}}}}"}}
    outputs: {{model: "${{{{parent.outputs.model}}}}"}}
schedule: {{every: 1m}}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv(SPEED_VAR, "10")  # inherited by the supervisor `up` starts
    root = tmp_path / "scheduled-flow"
    shutil.copytree(EXAMPLES / "iris" / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    lines = (EXAMPLES / "iris" / "data" / "iris.csv").read_text().splitlines()
    (root / "history").mkdir(parents=True)
    (root / "history" / "rows.csv").write_text("\n".join(lines[:121]) + "\n")
    (root / "mlspec.yaml").write_text(SPEC.format(python=sys.executable))
    yield root
    mlspec("down", str(root), "--yes", check=False)


def test_the_supervisor_fires_a_scheduled_pipeline_on_the_new_rows(project: Path) -> None:
    from mlspec.runtime.tracking import client

    up = mlspec("up", str(project), "--yes").stdout
    assert "registered iris-clf:1" in up, up
    lines = (EXAMPLES / "iris" / "data" / "iris.csv").read_text().splitlines()
    (project / "history" / "rows.csv").write_text("\n".join(lines) + "\n")  # 29 rows arrive after `up`

    paths = WorkspacePaths(project / ".mlspec")
    registry = client(paths.tracking_uri)

    def retrained() -> bool:
        return any(int(v.version) >= 2 for v in registry.search_model_versions("name='iris-clf'"))

    wait_for(retrained, 120)
    newest = max(registry.search_model_versions("name='iris-clf'"), key=lambda v: int(v.version))
    step_run = registry.get_run(newest.run_id)
    assert step_run.data.tags[SCHEDULED_TAG] == "true" and step_run.data.tags["mlspec.pipeline.step"] == "train"
    pipeline_run = registry.get_run(step_run.data.tags["mlflow.parentRunId"]).data.tags
    assert pipeline_run[SCHEDULED_TAG] == "true"
    assert (pipeline_run["mlspec.step.settings"], pipeline_run["mlspec.step.train"]) == ("reused", "succeeded")
    # The train step read a copy of the source as it was when the run started: all 150 rows.
    copies = list((paths.root / "schedules" / "job-flow").glob("run-*/data/*/rows.csv"))
    assert copies and all(len(c.read_text().splitlines()) == 151 for c in copies)

    # `mlspec status` shows the timetable; the pipeline's record is as `up` left it (a scheduled run is no change).
    store = StateStore(paths.state_db)
    try:
        row = schedule_of(store, "job/flow")
        assert row is not None and row.runs >= 1
        shown = summary(row)
        assert shown["next_run"] and shown["last_run"]
        assert store.records()["job/flow"].outputs["models"] == {"iris-clf": 1}
    finally:
        store.close()

"""Scheduled pipelines and AutoML jobs on the local engine: `up` arms them with what their runs will run, the
supervisor's scheduler starts each on time (an injected clock), and a pipeline's run really re-runs the step that
reads the refreshed Data while the step whose inputs did not change is reused, each run a new MLflow run tagged
as scheduled."""

from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mlspec.backends.local.context import Context
from mlspec.backends.local.fire import fire
from mlspec.backends.local.handlers import handler_for
from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.schedule_arm import rearm
from mlspec.backends.local.schedule_state import schedule_of, update
from mlspec.backends.local.scheduler import Scheduler
from mlspec.backends.local.state import StateStore
from mlspec.graph import load_graph
from mlspec.plan import Record, spec_of
from mlspec.runtime.pipeline import cache
from mlspec.spec.schedule import SCHEDULED_TAG
from tests.local.conftest import EXAMPLES
from tests.local.test_scheduler import Clock, Launcher

# `constant` reads nothing that changes; `count` reads the Data (as the pipeline's input) and writes its row count.
SPEC = """\
kind: Workspace
name: kinds
---
kind: Data
name: rows
path: rows/
---
kind: Data
name: wine
path: wine.csv
---
kind: Job
name: flow
type: pipeline
inputs: {{table: data:rows}}
jobs:
  constant:
    command: {python} -c "import sys, pathlib; pathlib.Path(sys.argv[1], 'k').write_text('1')" ${{{{outputs.out}}}}
    outputs: {{out: {{type: uri_folder}}}}
  count:
    command: >-
      {python} -c "import sys, pathlib; rows = pathlib.Path(sys.argv[1], 'rows.csv').read_text().splitlines();
      pathlib.Path(sys.argv[3], 'n').write_text(str(len(rows)) + pathlib.Path(sys.argv[2], 'k').read_text())"
      ${{{{inputs.table}}}} ${{{{inputs.prior}}}} ${{{{outputs.counted}}}}
    inputs: {{table: "${{{{parent.inputs.table}}}}", prior: "${{{{parent.jobs.constant.outputs.out}}}}"}}
    outputs: {{counted: {{type: uri_folder}}}}
schedule: {{every: 1h}}
---
kind: Job
name: search
type: automl
task: classification
training_data: data:wine
target_column_name: cultivar
limits: {{timeout_minutes: 0.1, max_trials: 30}}
training: {{allowed_training_algorithms: [LogisticRegression, RandomForest]}}
outputs: {{model: {{type: model, register_as: wine-clf}}}}
schedule: {{cron: "0 3 * * *", timezone: Europe/Paris}}
"""


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    """The spec as an `up` leaves it before its jobs run: Data snapshots taken and recorded."""
    (tmp_path / "rows").mkdir()
    (tmp_path / "rows" / "rows.csv").write_text("a\n1\n2\n")
    shutil.copy(EXAMPLES / "automl" / "data" / "wine.csv", tmp_path / "wine.csv")
    (tmp_path / "mlspec.yaml").write_text(SPEC.format(python=sys.executable))
    graph = load_graph([tmp_path])
    paths = WorkspacePaths(tmp_path / ".mlspec")
    paths.create()
    store = StateStore(paths.state_db)
    context = Context(graph, paths, store, {}, lambda _line: None)
    for node in graph.nodes.values():
        if node.kind == "Data":
            outputs = handler_for("Data").apply(context, node)
            context.records[node.id] = Record(node.id, node.kind, node.hash, spec_of(node), node.files, {}, outputs)
    yield context
    store.close()


def _due(store: StateStore, resource_id: str) -> float:
    row = schedule_of(store, resource_id)
    assert row is not None and row.next_run is not None
    return row.next_run


def test_up_arms_both_kinds_and_the_scheduler_starts_each_on_time(ctx: Context) -> None:
    for job in ("job/flow", "job/search"):
        assert rearm(ctx, ctx.node(job)) is not None
    flow, search = schedule_of(ctx.store, "job/flow"), schedule_of(ctx.store, "job/search")
    assert flow is not None and search is not None
    assert flow.launch["kind"] == "pipeline" and search.launch["kind"] == "automl"
    # Only the step reading the Data reads its source afresh; the digest is that of the rows `up` read.
    source = str((ctx.graph.spec.root / "rows").resolve())
    assert list(flow.launch["reads"]) == ["count.table"]
    assert flow.launch["reads"]["count.table"]["source"] == source
    assert flow.launch["reads"]["count.table"]["digest"] == cache.output_digest(ctx.outputs("data/rows")["path"])
    assert search.launch["sources"] == {"data": str((ctx.graph.spec.root / "wine.csv").resolve())}

    # The cron runs at 03:00 Paris time; an `every: 1h` an hour after it was armed.
    at_three = datetime.fromtimestamp(_due(ctx.store, "job/search"), UTC)
    paris = at_three.astimezone(ZoneInfo("Europe/Paris"))
    assert (paris.hour, paris.minute) == (3, 0) and at_three.timestamp() - search.armed <= 24 * 3600
    hourly = _due(ctx.store, "job/flow")
    assert hourly - flow.armed == pytest.approx(3600)
    clock = Clock(min(hourly, at_three.timestamp()) - 1)
    launcher = Launcher(str(ctx.paths.root.resolve()))
    scheduler = Scheduler(clock, launcher, log=lambda _line: None)
    scheduler.tick(ctx.store)
    assert launcher.started == []
    clock.at = max(hourly, at_three.timestamp())
    scheduler.tick(ctx.store)
    assert sorted(launcher.started) == [("job/flow", 1), ("job/search", 1)]
    launcher.wait()


def _fire(ctx: Context, resource_id: str, run: int) -> str | None:
    update(ctx.store, resource_id, runs=run)  # as the scheduler numbers the run it starts
    return fire(ctx.paths, resource_id, run, threading.Event())


@pytest.mark.e2e
def test_a_scheduled_pipeline_re_runs_the_step_reading_new_rows_and_reuses_the_rest(ctx: Context) -> None:
    from mlspec.runtime.tracking import client

    rearm(ctx, ctx.node("job/flow"))
    assert _fire(ctx, "job/flow", 1) == "succeeded"
    (ctx.graph.spec.root / "rows" / "rows.csv").write_text("a\n1\n2\n3\n4\n")  # rows arrive after `up`
    assert _fire(ctx, "job/flow", 2) == "succeeded"
    assert _fire(ctx, "job/flow", 3) == "succeeded"  # nothing new: every step reused

    row = schedule_of(ctx.store, "job/flow")
    assert row is not None and row.last_outcome == "succeeded" and row.last_run_id
    tracking = client(ctx.tracking_uri)
    parents = [r for r in tracking.search_runs([tracking.get_experiment_by_name("kinds").experiment_id])
               if "mlflow.parentRunId" not in r.data.tags]
    by_run = {int(r.data.tags["mlspec.schedule.run"]): r.data.tags for r in parents}
    assert sorted(by_run) == [1, 2, 3]
    assert all(tags[SCHEDULED_TAG] == "true" and tags["mlspec.status"] == "succeeded" for tags in by_run.values())
    steps = {run: (tags["mlspec.step.constant"], tags["mlspec.step.count"]) for run, tags in by_run.items()}
    assert steps == {1: ("succeeded", "succeeded"), 2: ("reused", "succeeded"), 3: ("reused", "reused")}
    counted = sorted((ctx.paths.root / "runs" / "flow" / "steps" / "count").glob("*/outputs/counted/n"))
    assert sorted(path.read_text() for path in counted) == ["31", "51"]  # the header and 2, then 4 rows; and k


@pytest.mark.e2e
def test_a_scheduled_automl_run_searches_the_new_rows_and_registers_a_new_version(ctx: Context) -> None:
    from mlspec.runtime.tracking import client

    rearm(ctx, ctx.node("job/search"))
    assert _fire(ctx, "job/search", 1) == "succeeded"
    wine = ctx.graph.spec.root / "wine.csv"
    lines = wine.read_text().splitlines()
    wine.write_text("\n".join([*lines, *lines[1:40]]) + "\n")  # rows arrive after `up`
    assert _fire(ctx, "job/search", 2) == "succeeded"

    tracking = client(ctx.tracking_uri)
    versions = {int(v.version): v for v in tracking.search_model_versions("name='wine-clf'")}
    assert sorted(versions) == [1, 2]
    for run in (1, 2):
        tags = tracking.get_run(versions[run].run_id).data.tags
        assert tags[SCHEDULED_TAG] == "true" and tags["mlspec.schedule.run"] == str(run)
    # Each run searched a copy of the source as it was when it started.
    copies = [ctx.paths.root / "schedules" / "job-search" / f"run-{run}" / "data" / "wine.csv" for run in (1, 2)]
    assert [len(c.read_text().splitlines()) for c in copies] == [len(lines), len(lines) + 39]
    row = schedule_of(ctx.store, "job/search")
    assert row is not None and row.last_run_id == versions[2].run_id

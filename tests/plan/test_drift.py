"""Drift in the planner: what a refresh found becomes a change with its reason, and follows to dependants."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from mlspec.graph import Graph, load_graph
from mlspec.plan import Change, Drift, Plan, Record, plan, records_of
from mlspec.render.plan import drift_text, plan_text
from mlspec.render.style import Style

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris"


@pytest.fixture
def graph(tmp_path: Path) -> Graph:
    target = tmp_path / "iris"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".mlspec"))
    return load_graph([target])


def applied(graph: Graph) -> dict[str, Record]:
    outputs = {"model/iris-clf": {"version": 2}, "model/iris-forest": {"version": 1}}
    return {rid: replace(record, outputs={**record.outputs, **outputs.get(rid, {})})
            for rid, record in records_of(graph).items()}


def test_no_drift_is_no_change(graph: Graph) -> None:
    assert not plan(graph, applied(graph), drift={}).has_changes


def test_drift_on_an_unchanged_resource_is_an_update_with_its_reason_and_verb(graph: Graph) -> None:
    result = plan(graph, applied(graph), drift={"endpoint/iris": [Drift("replica blue/0 is not running", "redeploy")]})
    change = result.get("endpoint/iris")
    assert change == Change("endpoint/iris", "Endpoint", "update", ("replica blue/0 is not running",), "redeploy",
                            drifted=True)
    assert {c.id for c in result.changes if c.action != "noop"} == {"endpoint/iris"}
    line = plan_text(result, Style(False)).splitlines()[0]
    assert line == "  ~ endpoint/iris  redeploy: replica blue/0 is not running"


def test_drift_without_a_verb_takes_the_kind_s_verb(graph: Graph) -> None:
    change = plan(graph, applied(graph), drift={"data/iris": [Drift("its snapshot is missing")]}).get("data/iris")
    assert change is not None and (change.action, change.verb) == ("update", "new version")


def test_a_lost_run_is_planned_as_a_create_and_its_dependants_follow(graph: Graph) -> None:
    result = plan(graph, applied(graph), drift={"job/train": [Drift("mlflow.db was emptied", recreate=True)],
                                          "model/iris-clf": [Drift("mlflow.db was emptied", recreate=True)]})
    assert result.get("job/train").action == "create"  # type: ignore[union-attr]
    assert result.get("model/iris-clf").reasons == ("mlflow.db was emptied",)  # type: ignore[union-attr]
    endpoint = result.get("endpoint/iris")
    assert endpoint is not None and endpoint.action == "update" and endpoint.verb == "redeploy"
    assert endpoint.reasons == ("follows model/iris-clf (mlflow.db was emptied)",)
    # What does not consume the re-made run is left alone.
    assert {c.id for c in result.changes if c.action != "noop"} == {"job/train", "model/iris-clf", "endpoint/iris"}
    assert "  + job/train" in plan_text(result, Style(False))


def test_data_drift_does_not_retrain(graph: Graph) -> None:
    """A snapshot taken again holds the same bytes: nothing downstream changes."""
    result = plan(graph, applied(graph), drift={"data/iris": [Drift("its snapshot was altered", "re-snapshot")]})
    assert {c.id for c in result.changes if c.action != "noop"} == {"data/iris"}


def test_drift_adds_to_a_change_the_spec_already_makes(graph: Graph) -> None:
    state = applied(graph)
    old = state["endpoint/iris"]
    state["endpoint/iris"] = Record(old.id, old.kind, "old", {**old.spec, "traffic": {"blue": 50, "green": 50}},
                                    old.files, old.upstream, old.outputs)
    change = plan(graph, state, drift={"endpoint/iris": [Drift("gateway.json differs", "reconfigure gateway")]}
                  ).get("endpoint/iris")
    assert change is not None and change.drifted and change.verb == "shift traffic"  # the spec's own change
    assert change.reasons == ("traffic blue 50 → 90, green 50 → 10", "gateway.json differs")


def test_drift_text_lists_only_drift() -> None:
    result = Plan([Change("endpoint/iris", "Endpoint", "update", ("replica blue/0 is not running",), "redeploy",
                          drifted=True),
                   Change("job/train", "Job", "update", ("files changed (src/train.py)",), "retrain")])
    text = drift_text(result, Style(False))
    assert "endpoint/iris  redeploy: replica blue/0 is not running" in text and "job/train" not in text
    assert drift_text(Plan([Change("job/train", "Job", "noop")]), Style(False)).startswith("No drift")

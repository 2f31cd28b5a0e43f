"""The planner: actions and reasons from the desired graph against recorded state."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlspec.graph import Graph, load_graph
from mlspec.plan import Record, plan, spec_of
from mlspec.plan.labels import desired_labels

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris"


@pytest.fixture
def iris(tmp_path: Path) -> Path:
    target = tmp_path / "iris"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".mlspec"))
    return target


def applied(graph: Graph, **outputs: dict) -> dict[str, Record]:
    """State as if every resource of `graph` had been applied."""
    return {n.id: Record(n.id, n.kind, n.hash, spec_of(n), n.files, {d: graph.nodes[d].hash for d in n.deps},
                         {"labels": desired_labels(n, graph.spec.workspace), **outputs.get(n.id, {})})
            for n in graph.nodes.values()}


def test_empty_state_creates_everything_in_dependency_order(iris: Path) -> None:
    graph = load_graph([iris])
    result = plan(graph, {})
    assert [c.action for c in result.changes] == ["create"] * len(graph.nodes)
    order = [c.id for c in result.changes]
    for node in graph.nodes.values():
        for dep in node.deps:
            assert order.index(dep) < order.index(node.id)
    assert result.get("model/iris-clf").reasons == ("register from job/train",)


def test_applied_state_is_a_noop(iris: Path) -> None:
    graph = load_graph([iris])
    result = plan(graph, applied(graph))
    assert not result.has_changes
    assert result.count("noop") == len(graph.nodes)


def test_code_change_retrains_registers_and_redeploys_only_downstream(iris: Path) -> None:
    before = load_graph([iris])
    state = applied(before, **{"model/iris-clf": {"version": 1}, "model/iris-forest": {"version": 1}})
    script = iris / "src" / "train.py"
    script.write_text(script.read_text() + "\n# tweak\n")
    result = plan(load_graph([iris]), state)
    changed = {c.id: c for c in result.changes if c.action != "noop"}
    assert set(changed) == {"job/train", "job/train-forest", "model/iris-clf", "model/iris-forest", "endpoint/iris"}
    assert changed["job/train"].verb == "retrain"
    assert "files changed (src/train.py)" in changed["job/train"].reasons
    assert "iris-clf 1 → 2" in changed["endpoint/iris"].reasons
    assert "iris-forest 1 → 2" in changed["endpoint/iris"].reasons


def test_field_change_names_the_field_and_values(iris: Path) -> None:
    before = load_graph([iris])
    spec = iris / "mlspec.yaml"
    spec.write_text(spec.read_text().replace("  C: 1.0", "  C: 0.5"))
    result = plan(load_graph([iris]), applied(before))
    assert result.get("job/train").reasons[0] == "inputs.C: 1.0 → 0.5"
    assert result.get("job/train-forest").action == "noop"


def test_traffic_change_updates_only_the_endpoint(iris: Path) -> None:
    before = load_graph([iris])
    spec = iris / "mlspec.yaml"
    spec.write_text(spec.read_text().replace("traffic: {blue: 90, green: 10}", "traffic: {blue: 50, green: 50}"))
    result = plan(load_graph([iris]), applied(before))
    changed = [c for c in result.changes if c.action != "noop"]
    assert [c.id for c in changed] == ["endpoint/iris"]
    assert set(changed[0].reasons) == {"traffic.blue: 90 → 50", "traffic.green: 10 → 50"}


def test_compute_type_change_is_a_replace(iris: Path) -> None:
    before = load_graph([iris])
    spec = iris / "mlspec.yaml"
    spec.write_text(spec.read_text().replace("type: cluster\nmax_nodes: 2\n", "type: local\n"))
    result = plan(load_graph([iris]), applied(before))
    assert result.get("compute/cpu").action == "replace"
    assert result.get("job/train").action == "noop"  # where a job runs is not what it computes


def test_removed_resources_are_deleted_dependants_first(iris: Path) -> None:
    graph = load_graph([iris])
    state = applied(graph)
    only_data = Graph(graph.spec, {"data/iris": graph.nodes["data/iris"]})
    result = plan(only_data, state)
    deletes = [c.id for c in result.changes if c.action == "delete"]
    assert set(deletes) == set(graph.nodes) - {"data/iris"}
    assert deletes.index("endpoint/iris") < deletes.index("model/iris-clf") < deletes.index("job/train")
    assert deletes.index("job/train") < deletes.index("compute/cpu")


def test_a_failed_step_is_retried(iris: Path) -> None:
    graph = load_graph([iris])
    state = applied(graph)
    failed = state["job/train"]
    state["job/train"] = Record(failed.id, failed.kind, failed.hash, failed.spec, failed.files, failed.upstream,
                                {}, "failed")
    change = plan(graph, state).get("job/train")
    assert change.action == "update"
    assert change.reasons == ("previous apply did not finish (failed)",)


def test_pinned_model_version_does_not_redeploy_on_retrain(iris: Path) -> None:
    spec = iris / "mlspec.yaml"
    spec.write_text(spec.read_text().replace("model: iris-forest@latest", "model: iris-forest:1"))
    before = load_graph([iris])
    script = iris / "src" / "train.py"
    script.write_text(script.read_text() + "\n# tweak\n")
    after = load_graph([iris])
    assert after.nodes["model/iris-forest"].hash != before.nodes["model/iris-forest"].hash
    # The endpoint still changes because blue follows iris-clf@latest; pin both and it would not.
    spec.write_text(spec.read_text().replace("model: iris-clf@latest", "model: iris-clf:1"))
    pinned_before = load_graph([iris])
    script.write_text(script.read_text() + "\n# again\n")
    assert load_graph([iris]).nodes["endpoint/iris"].hash == pinned_before.nodes["endpoint/iris"].hash

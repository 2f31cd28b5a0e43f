"""The planner: actions and reasons from the desired graph against recorded state."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from mlspec.graph import Graph, load_graph
from mlspec.plan import Record, plan, records_of

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris"


@pytest.fixture
def iris(tmp_path: Path) -> Path:
    target = tmp_path / "iris"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".mlspec"))
    return target


def applied(graph: Graph, **outputs: dict) -> dict[str, Record]:
    """State as if every resource of `graph` had been applied."""
    return {rid: replace(record, outputs={**record.outputs, **outputs.get(rid, {})})
            for rid, record in records_of(graph).items()}


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
    assert changed[0].reasons == ("traffic blue 90 → 50, green 10 → 50",)
    assert changed[0].verb == "shift traffic"


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


def test_new_versions_are_numbered_as_the_registry_will_number_them(iris: Path) -> None:
    from mlspec.plan import RegistryView
    from mlspec.render.plan import plan_text
    from mlspec.render.style import Style

    graph = load_graph([iris])
    state = applied(graph, **{"model/iris-clf": {"version": 1}, "model/iris-forest": {"version": 1}})
    script = iris / "src" / "train.py"
    script.write_text(script.read_text() + "\n# tweak\n")
    # Another spec (or a person) registered iris-clf versions 2 and 3 since this workspace's last up.
    result = plan(load_graph([iris]), state, RegistryView(latest={"iris-clf": 3, "iris-forest": 1}))
    clf, forest = result.get("model/iris-clf"), result.get("model/iris-forest")
    assert (clf.version, clf.registers, forest.version, forest.registers) == (4, True, 2, True)
    assert "iris-clf 1 → 4" in result.get("endpoint/iris").reasons
    text = plan_text(result, Style(False))
    assert "~ model/iris-clf:4" in text and "~ model/iris-forest:2" in text
    assert text.splitlines()[-1].endswith("2 model versions to register.")


SPEC = """\
kind: Job
name: t
command: python train.py --out ${{outputs.m}}
outputs: {m: {type: model}}
---
kind: Model
name: clf
job: t
---
kind: Model
name: ext
path: ext.pkl
"""


def test_a_new_alias_on_an_unchanged_model_registers_nothing_and_says_where_it_goes(tmp_path: Path) -> None:
    from mlspec.plan import RegistryView

    (tmp_path / "ext.pkl").write_bytes(b"model")
    (tmp_path / "mlspec.yaml").write_text(SPEC)
    before = load_graph([tmp_path])
    state = applied(before, **{"model/clf": {"version": 2}, "model/ext": {"version": 1}})
    (tmp_path / "mlspec.yaml").write_text(SPEC.replace("job: t\n", "job: t\naliases: [champion]\n"))
    result = plan(load_graph([tmp_path]), state, RegistryView(latest={"clf": 2, "ext": 1}))
    assert [c.id for c in result.changes if c.action != "noop"] == ["model/clf"]  # the job does not retrain
    change = result.get("model/clf")
    assert (change.version, change.registers, change.reasons) == (2, False, ("set alias champion on clf:2",))
    assert result.registrations == 0


def test_a_model_path_with_files_the_registry_has_reuses_that_version(tmp_path: Path) -> None:
    from mlspec.plan import RegistryView
    from mlspec.runtime.packaging import source_digest

    (tmp_path / "ext.pkl").write_bytes(b"model")
    (tmp_path / "mlspec.yaml").write_text(SPEC)
    graph = load_graph([tmp_path])
    digest = source_digest(tmp_path / "ext.pkl")  # what registration tags the version with
    result = plan(graph, {}, RegistryView(latest={"ext": 3}, sources={"ext": {digest: 2}}))
    change = result.get("model/ext")
    assert (change.version, change.registers) == (2, False)
    assert change.reasons[-1] == "the same files as ext:2, which is reused"
    assert plan(graph, {}, RegistryView(latest={"ext": 3})).get("model/ext").version == 4


def test_an_alias_neither_the_spec_nor_the_registry_has_blocks_the_plan(tmp_path: Path) -> None:
    from mlspec.plan import RegistryView
    from mlspec.render.plan import plan_text
    from mlspec.render.style import Style

    (tmp_path / "ext.pkl").write_bytes(b"model")
    (tmp_path / "mlspec.yaml").write_text(SPEC.replace("job: t\n", "job: t\naliases: [champion]\n") + (
        "---\nkind: Endpoint\nname: api\ndeployments:\n  a: {model: clf@staging}\n  b: {model: clf@champion}\n"
        "  c: {model: ext@prod}\ntraffic: {a: 50, b: 25, c: 25}\n"))
    graph = load_graph([tmp_path])
    assert plan(graph, {}).blockers == []  # no registry read: nothing to say yet
    result = plan(graph, {}, RegistryView(aliases={"ext": {"prod": 1}}))
    assert [(b.id, b.message.split(";")[0]) for b in result.blockers] == [
        ("endpoint/api", "deployments.a.model: no version of model 'clf' has alias 'staging' in the registry, and "
                         "no Model in the spec declares it")]
    text = plan_text(result, Style(False))
    assert "error: endpoint/api: deployments.a.model" in text
    assert text.splitlines()[-1] == "Plan cannot be applied: 1 error above."


def test_a_pinned_version_the_registry_lacks_and_up_does_not_register_blocks_the_plan(tmp_path: Path) -> None:
    from mlspec.plan import RegistryView

    (tmp_path / "ext.pkl").write_bytes(b"model")
    (tmp_path / "mlspec.yaml").write_text(SPEC + (
        "---\nkind: Endpoint\nname: api\ndeployments:\n  a: {model: 'clf:3'}\n  b: {model: 'clf:2'}\n"
        "  c: {model: 'ext:5'}\ntraffic: {a: 50, b: 25, c: 25}\n"))
    graph = load_graph([tmp_path])
    # clf has versions 1 and 2 and this up registers clf:3; ext has 1 and this up registers ext:2, not ext:5.
    result = plan(graph, {}, RegistryView(latest={"clf": 2, "ext": 1}, versions={"clf": {1, 2}, "ext": {1}}))
    assert [(b.id, b.message) for b in result.blockers] == [
        ("endpoint/api", "deployments.c.model: the registry has no version 5 of model 'ext' (it has 1), and up "
                         "will not register it; refer to ext@latest or to a version that exists")]

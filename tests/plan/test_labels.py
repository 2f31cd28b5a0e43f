"""Tags and descriptions: outside every content hash, so changing them alone plans an in-place relabel."""

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


def _edit(spec: Path, kind: str, name: str | None, **fields: object) -> None:
    """Set fields of one document of the example's mlspec.yaml (the Workspace when name is None)."""
    path = spec / "mlspec.yaml"
    docs = list(yaml.safe_load_all(path.read_text()))
    doc = next(d for d in docs if d["kind"] == kind and (name is None or d["name"] == name))
    doc.update(fields)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def test_tags_and_description_are_not_part_of_any_hash(iris: Path) -> None:
    before = {n.id: n.hash for n in load_graph([iris]).nodes.values()}
    _edit(iris, "Job", "train", tags={"team": "ml"}, description="Baseline")
    _edit(iris, "Environment", "sklearn", tags={"team": "ml"})
    _edit(iris, "Workspace", None, tags={"env": "prod"}, description="changed")
    after = load_graph([iris])
    assert {n.id: n.hash for n in after.nodes.values()} == before
    assert '"tags":{"team":"ml"}' in after.nodes["job/train"].spec  # still recorded with the resource


def test_a_tag_change_relabels_in_place_and_nothing_downstream(iris: Path) -> None:
    _edit(iris, "Job", "train", tags={"team": "ml", "cost": "a1"})
    state = records_of(load_graph([iris]))
    _edit(iris, "Job", "train", tags={"team": "research", "owner": "ana"}, description="Baseline")
    result = plan(load_graph([iris]), state)
    changed = [c for c in result.changes if c.action != "noop"]
    assert [(c.id, c.action, c.verb) for c in changed] == [("job/train", "update", "relabel")]
    assert changed[0].reasons == ("tags changed (cost removed, owner added, team: ml → research)",
                                  "description changed")
    text = plan_text(result, Style(False))
    assert "~ job/train  relabel: tags changed (" in text and "1 to update, 0 to replace" in text


def test_each_kind_relabels_and_an_unlabelled_state_stays_a_noop(iris: Path) -> None:
    with (iris / "mlspec.yaml").open("a") as spec:
        spec.write("---\nkind: Model\nname: iris-clf\njob: train\n")
    state = records_of(load_graph([iris]))
    assert not plan(load_graph([iris]), state).has_changes
    for kind, name in (("Compute", "cpu"), ("Environment", "sklearn"), ("Data", "iris"), ("Endpoint", "iris"),
                       ("Model", "iris-clf")):
        _edit(iris, kind, name, tags={"team": "ml"})
    result = plan(load_graph([iris]), state)
    changed = {c.id: c for c in result.changes if c.action != "noop"}
    assert set(changed) == {"compute/cpu", "environment/sklearn", "data/iris", "endpoint/iris", "model/iris-clf"}
    assert all(c.verb == "relabel" and c.reasons == ("tags changed (team added)",) for c in changed.values())


def test_workspace_labels_relabel_the_jobs_whose_experiments_carry_them(iris: Path) -> None:
    state = records_of(load_graph([iris]))
    _edit(iris, "Workspace", None, tags={"env": "prod"})
    changed = {c.id: c.reasons for c in plan(load_graph([iris]), state).changes if c.action != "noop"}
    assert changed == {"job/train": ("workspace tags changed (env added)",),
                       "job/train-forest": ("workspace tags changed (env added)",)}


def test_a_real_change_with_a_tag_change_is_still_a_retrain(iris: Path) -> None:
    state = records_of(load_graph([iris]))
    _edit(iris, "Job", "train", tags={"team": "ml"}, timeout="2h")
    change = plan(load_graph([iris]), state).get("job/train")
    assert change is not None and change.verb == "retrain"
    assert change.reasons == ("tags added", "timeout added")

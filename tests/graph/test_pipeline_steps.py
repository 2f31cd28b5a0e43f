"""A pipeline's steps in the graph: their order and edges, a content hash per step (an edited file changes only its
step's), the plan's reasons in steps' terms, and the graph rendered with its steps."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from mlspec.graph import Graph, load_graph
from mlspec.graph.steps import downstream, pipeline_steps
from mlspec.plan import Record, plan
from mlspec.plan.compare import records_of
from mlspec.render.graph import graph_json, graph_mermaid, graph_text

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pipeline"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLE, tmp_path / "pipeline", ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    return tmp_path / "pipeline"


def _applied(graph: Graph) -> dict[str, Record]:
    """The state a successful `up` of `graph` leaves (as a base revision stands in for it in `plan --base`): every
    step finished with its hash recorded, the model at version 1."""
    records = records_of(graph)
    model = records["model/wine-clf"]
    records[model.id] = replace(model, outputs={**model.outputs, "version": 1})
    return records


def test_steps_are_ordered_with_their_edges(example: Path) -> None:
    steps = pipeline_steps(load_graph([example]), "job/wine")
    assert list(steps) == ["prepare", "train", "evaluate"]
    assert steps["train"].deps == ("prepare",) and steps["evaluate"].deps == ("prepare", "train")
    assert set(steps["train"].files) == {"src/train/train.py"}  # a step's files are its own code's
    assert downstream(steps, "prepare") == {"train", "evaluate"} and downstream(steps, "evaluate") == set()


def test_an_edited_file_changes_only_its_steps_hash_and_the_plan_says_what_reruns(example: Path) -> None:
    before = load_graph([example])
    train = example / "src" / "train" / "train.py"
    train.write_text(train.read_text() + "\n# tuned\n")
    after = load_graph([example])
    old, new = pipeline_steps(before, "job/wine"), pipeline_steps(after, "job/wine")
    assert old["train"].hash != new["train"].hash
    assert old["prepare"].hash == new["prepare"].hash and old["evaluate"].hash == new["evaluate"].hash
    change = plan(after, _applied(before)).get("job/wine")
    assert change is not None and change.action == "update"
    assert change.reasons == ("re-run train: files changed in step train (src/train/train.py)",
                              "re-run evaluate: upstream train re-runs", "reuse prepare (unchanged)")
    model = plan(after, _applied(before)).get("model/wine-clf")
    assert model is not None and model.registers and model.version == 2  # train re-runs: a new version


def test_a_model_whose_step_is_reused_keeps_its_version(example: Path) -> None:
    before = load_graph([example])
    evaluate = example / "src" / "evaluate" / "evaluate.py"
    evaluate.write_text(evaluate.read_text() + "\n# reworded\n")
    planned = plan(load_graph([example]), _applied(before))
    assert planned.get("job/wine").reasons == (  # type: ignore[union-attr]
        "re-run evaluate: files changed in step evaluate (src/evaluate/evaluate.py)",
        "reuse prepare, train (unchanged)")
    model = planned.get("model/wine-clf")
    assert model is not None and not model.registers and model.version == 1 and planned.registrations == 0


def test_a_pipeline_input_reruns_the_steps_that_read_it(example: Path) -> None:
    before = load_graph([example])
    spec = example / "mlspec.yaml"
    spec.write_text(spec.read_text().replace("test_size: 0.25", "test_size: 0.3"))
    change = plan(load_graph([example]), _applied(before)).get("job/wine")
    assert change is not None
    assert change.reasons == ("re-run prepare: step prepare: pipeline inputs.test_size: 0.25 → 0.3",
                              "re-run train: upstream prepare re-runs", "re-run evaluate: upstream prepare re-runs")


def test_an_unchanged_pipeline_plans_nothing_and_a_new_one_runs_every_step(example: Path) -> None:
    graph = load_graph([example])
    assert plan(graph, _applied(graph)).get("job/wine").action == "noop"  # type: ignore[union-attr]
    created = plan(graph, {}).get("job/wine")
    assert created is not None and created.reasons == ("run steps prepare, train, evaluate",)


def test_the_graph_shows_steps_and_their_edges(example: Path) -> None:
    graph = load_graph([example])
    text = graph_text(graph)
    assert "  step train  " in text and "    ← step prepare" in text
    mermaid = graph_mermaid(graph)
    assert 'subgraph job__wine["job/wine"]' in mermaid and "job__wine__train --> job__wine__evaluate" in mermaid
    [wine] = [n for n in graph_json(graph)["nodes"] if n["id"] == "job/wine"]  # type: ignore[attr-defined]
    assert [(s["name"], s["deps"]) for s in wine["steps"]] == [
        ("prepare", []), ("train", ["prepare"]), ("evaluate", ["prepare", "train"])]

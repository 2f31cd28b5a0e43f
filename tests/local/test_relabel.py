"""A relabel that fails leaves the resource as it was: the next plan relabels again, it never retrains."""

from __future__ import annotations

from pathlib import Path

from mlspec.backends.local.apply import apply_plan
from mlspec.backends.local.context import Context
from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.state import StateStore
from mlspec.graph import load_graph
from mlspec.plan import Record, plan, spec_of
from mlspec.plan.labels import desired_labels

SPEC = """\
kind: Workspace
name: ws
tracking: {{uri: "{uri}"}}
---
kind: Job
name: train
command: python -c pass
tags: {tags}
"""


def test_a_failed_relabel_keeps_the_job_ready_and_is_planned_again(tmp_path: Path) -> None:
    # A tracking store that cannot be opened (its folder is a file) makes labelling the job's runs fail.
    (tmp_path / "not-a-folder").write_text("")
    uri = f"sqlite:///{tmp_path / 'not-a-folder' / 'mlflow.db'}"
    (tmp_path / "mlspec.yaml").write_text(SPEC.format(uri=uri, tags="{team: ml}"))
    graph = load_graph([tmp_path])
    paths = WorkspacePaths(tmp_path / ".mlspec")
    paths.root.mkdir()
    store = StateStore(paths.state_db)
    for node in graph.nodes.values():  # as an earlier `up` left it
        store.put(Record(node.id, node.kind, node.hash, spec_of(node), node.files,
                         {d: graph.nodes[d].hash for d in node.deps},
                         {"run_id": "r1", "labels": desired_labels(node, graph.spec.workspace)}))
    (tmp_path / "mlspec.yaml").write_text(SPEC.format(uri=uri, tags="{team: research}"))
    graph = load_graph([tmp_path])
    records = store.records()
    first = plan(graph, records)
    assert first.get("job/train").verb == "relabel"  # type: ignore[union-attr]

    lines: list[str] = []
    outcome = apply_plan(Context(graph, paths, store, records, lines.append), first)
    assert "job/train" in outcome.failed
    kept = store.records()["job/train"]
    assert (kept.status, kept.outputs) == ("ready", {"run_id": "r1", "labels": {"tags": {"team": "ml"}}})
    again = plan(graph, store.records()).get("job/train")
    assert again is not None and (again.action, again.verb) == ("update", "relabel")
    store.close()

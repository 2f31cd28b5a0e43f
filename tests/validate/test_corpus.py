"""The spec corpus: valid specs validate cleanly; each invalid one gives exactly its expected diagnostics."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
import yaml

from mlspec.graph import analyze
from mlspec.spec import Model
from mlspec.spec.compute import COMPUTE_TYPES
from mlspec.spec.endpoint import ENDPOINT_TYPES

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
ROOT = CORPUS.parents[1]
EXPECTED: dict[str, list[dict[str, object]]] = yaml.safe_load((CORPUS / "invalid" / "expected.yaml").read_text())


@pytest.fixture(autouse=True)
def _from_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # diagnostics show paths relative to the working directory


def test_valid_corpus_has_no_diagnostics() -> None:
    analysis = analyze([CORPUS / "valid"])
    assert [f"{d.span}: {d.summary}" for d in analysis.diagnostics.items] == []
    assert analysis.graph is not None
    assert analysis.files == ["tests/corpus/valid/all_kinds.yaml", "tests/corpus/valid/included.yaml",
                              "tests/corpus/valid/parts/more.yaml", "tests/corpus/valid/models.yaml"]
    nodes = analysis.graph.nodes.values()
    variants = {(n.kind, getattr(n.resource, "type", None)) for n in nodes}
    assert {("Compute", t) for t in COMPUTE_TYPES} | {("Endpoint", t) for t in ENDPOINT_TYPES} <= variants
    environments = {n.name: n.files for n in nodes if n.kind == "Environment"}
    assert environments == {"listed": {}, "from-file": {"env/requirements.txt": ANY}, "conda": {"env/conda.yaml": ANY},
                            "built": {"ctx/Dockerfile": ANY}}
    sources = {n.id: (n.resource.job, n.resource.path) for n in nodes if isinstance(n.resource, Model)}
    assert sources == {"model/clf": ("train", None), "model/head-b": ("two-heads", None),
                       "model/external": (None, "data/model.pkl"), "model/state-dict": (None, "data/model.pkl")}
    graph = analysis.graph
    # A Model naming a job's output is what makes the job register it (the output has no register_as).
    assert graph.nodes["job/two-heads"].resource.outputs["b"].register_as == "head-b"
    assert graph.nodes["job/evaluate"].deps == ("compute/here", "environment/built", "model/clf", "model/head-b")
    assert set(graph.nodes["data/folder"].files) == {"data/folder/part-0.txt"}  # relative: machine-independent
    assert graph.nodes["compute/merged"].resource.resources.memory == 2**30  # from a YAML merge key
    assert graph.nodes["data/anchored"].resource.description == "data/rows.csv"  # from a YAML alias


def test_every_invalid_file_is_in_the_table() -> None:
    files = {p.name for p in (CORPUS / "invalid").glob("*.yaml")} - {"expected.yaml"}
    assert files == set(EXPECTED)


def _target(path: Path) -> Any:
    """The target a spec is checked for, from a first line `# target: NAME`; None: no target's check."""
    first = path.read_text(encoding="utf-8").partition("\n")[0]
    return first.removeprefix("# target:").strip() if first.startswith("# target:") else None


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_spec_gives_exactly_its_diagnostics(name: str) -> None:
    path = Path("tests/corpus/invalid") / name
    analysis = analyze([path], _target(path))
    found = analysis.diagnostics.sorted()
    expected = sorted(EXPECTED[name], key=lambda e: (e["line"], e.get("column", 0)))  # type: ignore[arg-type, return-value]
    assert [d.span.line for d in found if d.span] == [e["line"] for e in expected], \
        "\n".join(f"{d.span}: {d.summary}" for d in found)
    for diagnostic, want in zip(found, expected, strict=True):
        assert diagnostic.span is not None and diagnostic.span.file == os.path.join("tests/corpus/invalid", name)
        assert str(want["summary"]) in diagnostic.summary
        if "column" in want:
            assert diagnostic.span.column == want["column"], diagnostic.summary
        if "hint" in want:
            assert str(want["hint"]) in (diagnostic.hint or ""), diagnostic.hint
        if "note" in want:
            note: dict[str, object] = want["note"]  # type: ignore[assignment]
            ((span, text),) = diagnostic.notes
            assert span.line == note["line"] and span.column == note.get("column", span.column), (span, text)
            assert str(note.get("text", "")) in text, text
        else:
            assert not diagnostic.notes, diagnostic.notes


def test_all_errors_of_several_files_are_reported_in_one_run() -> None:
    names = ["misspelt_field.yaml", "unknown_kind.yaml", "wrong_types.yaml"]
    analysis = analyze([Path("tests/corpus/invalid") / n for n in names])
    files = {d.span.file for d in analysis.diagnostics.items if d.span}
    assert files == {os.path.join("tests/corpus/invalid", n) for n in names}
    assert len(analysis.diagnostics.errors) == sum(len(EXPECTED[n]) for n in names)

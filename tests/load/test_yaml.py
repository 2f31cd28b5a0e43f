"""YAML loading: YAML 1.2 scalars (no Norway problem), spans for every node, duplicate keys, includes."""

from __future__ import annotations

from pathlib import Path

from mlspec.diagnostics import Diagnostics
from mlspec.load import load, parse_yaml


def parse(text: str) -> tuple[list, Diagnostics]:  # type: ignore[type-arg]
    diagnostics = Diagnostics()
    return parse_yaml(text, "spec.yaml", diagnostics), diagnostics


def test_yaml_surprises_are_not_surprises() -> None:
    docs, diagnostics = parse("name: no\nflag: on\nyes_: yes\nday: 2024-01-01\nmode: 0755\nq: '1'\nt: !!str 1\n"
                              "b: true\nf: 1.5\nn: null\ne:\ni: 0o17\nh: 0x1F\n")
    assert not diagnostics
    assert docs[0].data == {"name": "no", "flag": "on", "yes_": "yes", "day": "2024-01-01", "mode": 755, "q": "1",
                            "t": "1", "b": True, "f": 1.5, "n": None, "e": None, "i": 15, "h": 31}


def test_flow_and_block_scalars_resolve_alike() -> None:
    docs, _ = parse("a: [1, x, 2.5, true]\nb: {c: 3}\nd: |\n  7\n")
    assert docs[0].data == {"a": [1, "x", 2.5, True], "b": {"c": 3}, "d": "7\n"}


def test_every_node_has_a_span() -> None:
    docs, _ = parse("kind: Job\nname: train\ninputs:\n  data: data:iris\n  list: [a, b]\n")
    doc = docs[0]
    assert (doc.span(("inputs", "data")).line, doc.span(("inputs", "data")).column) == (4, 9)
    assert (doc.key_span(("inputs", "data")).line, doc.key_span(("inputs", "data")).column) == (4, 3)
    assert doc.span(("inputs", "list", 1)).column == 13
    assert doc.span(("inputs", "missing")) == doc.span(("inputs",))  # falls back to the closest ancestor


def test_duplicate_keys_are_errors_at_the_second_key() -> None:
    _, diagnostics = parse("kind: Compute\nname: a\nresources:\n  cpus: 1\n  cpus: 2\n")
    (error,) = diagnostics.items
    assert (error.span.line, error.span.column) == (5, 3)
    assert error.summary == "duplicate key 'cpus' (first given on line 4)"


def test_several_documents_and_empty_ones() -> None:
    docs, _ = parse("---\nkind: A\n---\n---\nkind: B\n...\n")
    assert [d.data["kind"] for d in docs] == ["A", "B"]


def test_includes_load_once_even_in_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("include: [b.yaml]\n---\nkind: Compute\nname: a\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\n---\nkind: Compute\nname: b\n")
    loaded = load([tmp_path / "a.yaml"])
    assert not loaded.diagnostics
    assert sorted(d.data["name"] for d in loaded.documents) == ["a", "b"]


def test_missing_include_and_missing_path_are_diagnostics(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("include: [nope.yaml]\n")
    loaded = load([tmp_path / "a.yaml", tmp_path / "absent.yaml"])
    summaries = [d.summary for d in loaded.diagnostics.items]
    assert summaries == ["included file 'nope.yaml' does not exist", f"'{tmp_path / 'absent.yaml'}' does not exist"]


def test_a_folder_loads_its_top_level_yaml_only(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text("kind: Compute\nname: a\n")
    (tmp_path / "two.yml").write_text("kind: Compute\nname: b\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ignored.yaml").write_text("kind: Compute\nname: c\n")
    assert sorted(d.data["name"] for d in load([tmp_path]).documents) == ["a", "b"]


def test_anchors_aliases_and_merge_keys() -> None:
    docs, diagnostics = parse("base: &b {cpus: 1, memory: 1Gi}\ncopy: *b\nmerged: {<<: *b, cpus: 2}\n"
                              "many: {<<: [*b, {gpus: 1}]}\n")
    assert not diagnostics
    assert docs[0].data["copy"] == {"cpus": 1, "memory": "1Gi"}
    assert docs[0].data["merged"] == {"cpus": 2, "memory": "1Gi"}  # explicit keys win over merged ones
    assert docs[0].data["many"] == {"cpus": 1, "memory": "1Gi", "gpus": 1}


def test_unsupported_tags_are_errors_on_any_node() -> None:
    _, diagnostics = parse("a: !!python/object/apply:os.system [echo hi]\nb: !custom 1\nc: !!python/name:os.system\n"
                           "d: !!map {e: 1}\n")
    assert [(d.span.line, d.span.column) for d in diagnostics.items] == [(1, 4), (2, 4), (3, 4)]
    assert all(d.summary.startswith("unsupported YAML tag") for d in diagnostics.items)


def test_keys_that_are_not_names_are_errors() -> None:
    _, diagnostics = parse("null: 1\n? [a]\n: 2\ntrue: 3\n'true': 4\n")
    assert [(d.span.line, d.summary) for d in diagnostics.items] == [
        (1, "'null' cannot be used as a key"), (2, "a mapping key must be a plain name"),
        (4, "'true' cannot be used as a key")]


def test_a_byte_order_mark_is_ignored() -> None:
    docs, diagnostics = parse("\ufeffkind: Job\n")
    assert not diagnostics and docs[0].data == {"kind": "Job"}

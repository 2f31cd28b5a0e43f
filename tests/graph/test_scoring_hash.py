"""A deployment's scoring script and input schema are part of its endpoint's content hash, and nothing else's."""

from __future__ import annotations

import shutil
from pathlib import Path

from mlspec.graph import load_graph

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris-scoring"


def _hashes(spec: Path) -> dict[str, str]:
    return {node_id: node.hash for node_id, node in load_graph([spec]).nodes.items()}


def test_editing_the_script_or_the_schema_changes_the_endpoint_alone(tmp_path: Path) -> None:
    spec = tmp_path / "iris-scoring"
    shutil.copytree(EXAMPLE, spec, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    before = _hashes(spec)
    nodes = load_graph([spec]).nodes
    assert {"score/score.py", "score/schema.json"} <= set(nodes["endpoint/iris-scored"].files)
    for edited in ("score.py", "schema.json"):
        path = spec / "score" / edited
        path.write_text(path.read_text() + "\n")
        after = _hashes(spec)
        assert [n for n in after if after[n] != before[n]] == ["endpoint/iris-scored"], edited
        before = after

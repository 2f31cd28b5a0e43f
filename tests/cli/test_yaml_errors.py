"""YAML syntax errors on the command line: where it broke and where the construct opened, each with its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlspec.cli.main import main


def test_an_unclosed_bracket_shows_where_it_opened_and_where_yaml_gave_up(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    Path("spec.yaml").write_text("kind: Environment\nname: e\nrequirements: [scikit-learn, mlflow\nother: 1\n")
    assert main(["validate", "spec.yaml"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "spec.yaml:3:15: error: YAML syntax error: the '[' opened here is not closed",
        "  |",
        "3 | requirements: [scikit-learn, mlflow",
        "  |               ^ add ']' where the sequence ends, or ',' between its items",
        "spec.yaml:4:6: note: YAML expected ',' or ']' here",
        "  |",
        "4 | other: 1",
        "  |      ^",
        "1 error in 1 file",
    ]
    assert main(["validate", "--json", "spec.yaml"]) == 2
    (diagnostic,) = json.loads(capsys.readouterr().out)["diagnostics"]
    assert (diagnostic["line"], diagnostic["column"]) == (3, 15)
    assert diagnostic["notes"] == [{"file": "spec.yaml", "line": 4, "column": 6,
                                    "note": "YAML expected ',' or ']' here"}]

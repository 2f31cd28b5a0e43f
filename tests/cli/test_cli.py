"""The command line: exit codes, JSON output, schema freshness and a fast start."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir())


def mlspec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlspec.cli.main", *args], capture_output=True, text=True, cwd=ROOT)


def test_examples_validate() -> None:
    for example in EXAMPLES:
        result = mlspec("validate", str(example))
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("valid: ")


def test_broken_copy_exits_2_with_line_exact_diagnostics(tmp_path: Path) -> None:
    broken = tmp_path / "iris"
    shutil.copytree(ROOT / "examples" / "iris", broken, ignore=shutil.ignore_patterns(".mlspec"))
    spec = broken / "mlspec.yaml"
    spec.write_text(spec.read_text().replace("max_nodes: 2", "max_node: 2"))
    result = mlspec("validate", str(spec))
    assert result.returncode == 2
    assert "mlspec.yaml:13:1: error: Compute 'cpu' has no field 'max_node'" in result.stderr
    assert "13 | max_node: 2" in result.stderr and "^^^^^^^^ did you mean 'max_nodes'?" in result.stderr
    data = json.loads(mlspec("validate", "--json", str(spec)).stdout)
    assert data["valid"] is False
    assert [(d["line"], d["column"], d["hint"]) for d in data["diagnostics"]] == [(13, 1, "did you mean 'max_nodes'?")]


def test_graph_formats() -> None:
    assert mlspec("graph", "examples/iris", "--format", "mermaid").stdout.startswith("flowchart LR")
    nodes = json.loads(mlspec("graph", "examples/iris", "--format", "json").stdout)["nodes"]
    assert {"id": "model/iris-clf", "deps": ["job/train"]}.items() <= next(
        n for n in nodes if n["id"] == "model/iris-clf").items()


def test_committed_schema_is_current_and_examples_match_it() -> None:
    printed = json.loads(mlspec("schema").stdout)
    committed = json.loads((ROOT / "schema" / "mlspec.schema.json").read_text())
    assert printed == committed, "schema/mlspec.schema.json is stale: run mlspec schema -o schema/mlspec.schema.json"
    validator = jsonschema.Draft202012Validator(committed)
    files = [f for e in EXAMPLES for f in e.glob("*.yaml")] + list((ROOT / "tests/corpus/valid").rglob("*.yaml"))
    files = [f for f in files if "env" not in f.parts]
    documents = [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]
    assert len(documents) > 25
    for document in documents:
        validator.validate(document)
    assert not validator.is_valid({"kind": "Job", "name": "t", "command": "x", "comand": "y"})
    assert not validator.is_valid({"kind": "Compute", "name": "c", "type": "clustr"})


def test_help_imports_nothing_heavy() -> None:
    probe = ("import sys; from mlspec.cli.main import build_parser; build_parser().format_help(); "
             "heavy = [m for m in ('pydantic', 'yaml', 'mlflow', 'sklearn', 'jinja2', 'numpy') if m in sys.modules]; "
             "print(heavy)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

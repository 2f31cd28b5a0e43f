"""The command line: exit codes, JSON output, graph formats and a fast start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlspec.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").iterdir() if p.is_dir())


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A copy of examples/iris with a misspelt field on line 13."""
    folder = tmp_path / "iris"
    shutil.copytree(ROOT / "examples" / "iris", folder, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    spec = folder / "mlspec.yaml"
    spec.write_text(spec.read_text().replace("max_nodes: 2", "max_node: 2"))
    return spec


@pytest.fixture(autouse=True)
def _from_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_the_console_script_exits_0_on_a_valid_spec_and_2_on_a_broken_one(broken: Path) -> None:
    mlspec = Path(sys.executable).with_name("mlspec")
    ok = subprocess.run([mlspec, "validate", "examples/iris"], capture_output=True, text=True)
    assert (ok.returncode, ok.stdout) == (0, "valid: 8 resources in 1 file\n"), ok.stderr
    bad = subprocess.run([mlspec, "validate", str(broken)], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.endswith("1 error in 1 file\n"), bad.stderr


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_validate(example: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", f"examples/{example}"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("valid: ") and err == ""


def test_diagnostics_show_the_line_the_caret_and_the_suggestion(broken: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "mlspec.yaml:13:1: error: Compute 'cpu' has no field 'max_node'" in err
    assert "13 | max_node: 2" in err and "^^^^^^^^ did you mean 'max_nodes'?" in err


def test_json_output_lists_every_diagnostic_with_its_place(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = broken.read_text().replace("  compute: cpu", "  compute: cpux")
    broken.write_text(spec.replace("forest --model-dir ${{outputs.model}}", "forest --model-dir ${{outputs.modle}}"))
    assert main(["validate", "--json", str(broken)]) == 2
    data = json.loads(capsys.readouterr().out)
    shown = os.path.relpath(broken, ROOT)
    assert data["valid"] is False and data["files"] == [shown]
    found = [(d["file"], d["line"], d["column"], d["summary"], d.get("hint")) for d in data["diagnostics"]]
    assert found == [
        (shown, 7, 12, "compute 'cpux' is not declared", f"did you mean 'cpu' ({shown}:11)?"),
        (shown, 13, 1, "Compute 'cpu' has no field 'max_node'", "did you mean 'max_nodes'?"),
        (shown, 43, 76, "job 'train-forest': command uses outputs.modle, which is not declared in outputs",
         "did you mean 'model'?"),
    ]


def test_json_output_of_a_valid_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--json", "examples/iris"]) == 0
    assert json.loads(capsys.readouterr().out) == {"valid": True, "files": ["examples/iris/mlspec.yaml"],
                                                   "diagnostics": []}


def test_graph_formats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "examples/iris", "--format", "mermaid"]) == 0
    mermaid = capsys.readouterr().out
    assert mermaid.startswith("flowchart")
    assert main(["graph", "examples/iris", "--format", "json"]) == 0
    nodes = {n["id"]: n for n in json.loads(capsys.readouterr().out)["nodes"]}
    assert nodes["model/iris-clf"]["deps"] == ["job/train"] and nodes["model/iris-clf"]["implicit"] is True
    assert all(len(n["hash"]) == 64 for n in nodes.values())
    assert main(["graph", "examples/iris"]) == 0
    text = capsys.readouterr().out
    assert all(node_id in text for node_id in nodes)


def test_graph_of_a_broken_spec_exits_2(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(broken), "--format", "mermaid"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "has no field 'max_node'" in err


def test_help_imports_nothing_heavy() -> None:
    probe = (
        "import contextlib, io, sys\n"
        "from mlspec.cli.main import main\n"
        "for argv in (['--help'], ['validate', '--help'], ['up', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
        "        main(argv)\n"
        "    assert 'usage: mlspec' in out.getvalue(), argv\n"
        "heavy = ('pydantic', 'yaml', 'mlflow', 'sklearn', 'jinja2', 'numpy', 'torch')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

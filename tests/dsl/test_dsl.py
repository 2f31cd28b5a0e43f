"""The Python DSL: the same graph as its YAML twin; diagnostics point into the .py file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlspec.cli.main import main
from mlspec.graph import analyze, load_graph

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris"

IRIS_TWIN = '''\
from mlspec.dsl import Compute, Data, Endpoint, Environment, Job, Workspace

Workspace(name="iris-demo", description="Iris classifiers trained on a local cluster and served blue/green.",
          defaults={"compute": "cpu", "environment": "sklearn"})
Compute(name="cpu", type="cluster", max_nodes=2, resources={"cpus": 1, "memory": "2Gi"})
Environment(name="sklearn", requirements=["scikit-learn>=1.4", "mlflow-skinny>=2.12"])
Data(name="iris", description="The iris flowers, 150 rows, as shipped with scikit-learn.", path="data/iris.csv")
JOBS = (("train", "logistic --C ${{inputs.C}}", "iris-clf"), ("train-forest", "forest", "iris-forest"))
for name, algo, model in JOBS:
    inputs = {"data": "data:iris", "C": 1.0} if name == "train" else {"data": "data:iris"}
    Job(name=name, code="src/",
        command=f"python train.py --data ${{{{inputs.data}}}} --algo {algo} --model-dir ${{{{outputs.model}}}}",
        inputs=inputs, outputs={"model": {"type": "model", "register_as": model, "flavor": "sklearn"}},
        experiment_name="iris")
Endpoint(name="iris", type="online", auth="key",
         deployments={"blue": {"model": "iris-clf@latest", "instance_count": 1},
                      "green": {"model": "iris-forest@latest", "instance_count": 1}},
         traffic={"blue": 90, "green": 10})
'''


def test_dsl_twin_gives_the_same_graph(tmp_path: Path) -> None:
    folder = tmp_path / "iris"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    from_yaml = load_graph([folder])
    (folder / "mlspec.yaml").unlink()
    (folder / "mlspec.py").write_text(IRIS_TWIN)
    from_dsl = load_graph([folder])
    assert {n.id: n.hash for n in from_dsl.nodes.values()} == {n.id: n.hash for n in from_yaml.nodes.values()}


def test_diagnostics_point_at_the_keyword(tmp_path: Path) -> None:
    spec = tmp_path / "mlspec.py"
    spec.write_text('from mlspec.dsl import Compute, Job\n\nCompute(name="cpu")\nJob(\n    name="train",\n'
                    '    comand="python x",\n    compute="cpux",\n)\n')
    analysis = analyze([spec])
    found = {(d.span.line, d.span.column, d.summary, d.hint) for d in analysis.diagnostics.items}
    assert (6, 5, "Job 'train' has no field 'comand'", "did you mean 'command'?") in found
    assert not any("missing required field 'command'" in summary for _, _, summary, _ in found)  # one mistake


def test_a_failing_dsl_file_is_a_diagnostic(tmp_path: Path) -> None:
    spec = tmp_path / "mlspec.py"
    spec.write_text("from mlspec.dsl import Compute\n\nCompute(name='cpu')\nraise RuntimeError('boom')\n")
    (diagnostic,) = analyze([spec]).diagnostics.items
    assert diagnostic.span.line == 4
    assert diagnostic.summary == "error running the spec: RuntimeError: boom"


def test_a_dsl_syntax_error_is_a_diagnostic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mlspec.py").write_text("from mlspec.dsl import Compute\n\nCompute(name='cpu'\nCompute(name='gpu')\n")
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "."]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("mlspec.py:3:1: error: error running the spec: SyntaxError:"), err
    assert "Traceback" not in out + err


def test_spans_follow_an_edited_dsl_file(tmp_path: Path) -> None:
    spec = tmp_path / "mlspec.py"
    spec.write_text('from mlspec.dsl import Compute\nCompute(name="cpu", max_nodes=2)\n')
    assert [d.span.line for d in analyze([spec]).diagnostics.items] == [2]
    spec.write_text('from mlspec.dsl import Compute\n\n\nCompute(\n    name="cpu",\n    max_nodes=2,\n)\n')
    (diagnostic,) = analyze([spec]).diagnostics.items
    assert (diagnostic.span.line, diagnostic.span.column, diagnostic.hint) == (6, 5, None)

"""Model registration on the local engine: a Model registers its job's output, aliases are set without retraining,
identical model files reuse their version, and an alias nothing provides stops `up` before anything runs."""

from __future__ import annotations

import json
import shlex
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlspec.runtime.tracking import client
from tests.local.conftest import mlspec

pytestmark = pytest.mark.e2e

SPEC = """\
kind: Workspace
name: registration
---
kind: Job
name: train
code: src
command: PYTHON train.py --out ${{outputs.model}}
outputs: {model: {type: model}}
---
kind: Model
name: clf
job: train
flavor: sklearn
""".replace("PYTHON", shlex.quote(sys.executable))  # the job runs in this interpreter, which has scikit-learn

TRAIN = textwrap.dedent("""\
    import argparse, joblib
    from sklearn.linear_model import LogisticRegression

    parser = argparse.ArgumentParser()
    parser.add_argument("--out")
    out = parser.parse_args().out
    model = LogisticRegression(max_iter=500).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    joblib.dump(model, out + "/model.joblib")
""")


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(TRAIN)
    (tmp_path / "mlspec.yaml").write_text(SPEC)
    yield tmp_path
    mlspec("down", str(tmp_path), "--yes", check=False)


def versions(spec: Path) -> dict[str, int | None]:
    registry = client(f"sqlite:///{spec / '.mlspec' / 'mlflow.db'}")
    found: dict[str, int | None] = {str(v.version): None for v in registry.search_model_versions("name='clf'")}
    found.update({alias: int(v) for alias, v in registry.get_registered_model("clf").aliases.items()})
    return found


def test_a_model_registers_its_jobs_output_and_gets_aliases_without_retraining(workspace: Path) -> None:
    first = mlspec("up", str(workspace), "--yes")
    assert "+ model/clf:1" in first.stdout and "registered clf:1" in first.stdout
    assert versions(workspace) == {"1": None}

    spec = workspace / "mlspec.yaml"
    spec.write_text(SPEC + "aliases: [champion]\n")
    planned = mlspec("plan", str(workspace), "--json")
    changes = {c["id"]: c for c in json.loads(planned.stdout)["changes"] if c["action"] != "noop"}
    assert set(changes) == {"model/clf"}  # the job does not retrain
    assert (changes["model/clf"]["version"], changes["model/clf"]["registers"]) == (1, False)
    second = mlspec("up", str(workspace), "--yes")
    assert "[train]" not in second.stdout
    assert versions(workspace) == {"1": None, "champion": 1}

    # A retrain that writes the very same model files reuses version 1 instead of registering version 2.
    script = workspace / "src" / "train.py"
    script.write_text(script.read_text() + "# a comment changes the code, not the model\n")
    third = mlspec("up", str(workspace), "--yes")
    assert "+ model/clf" not in third.stdout and "~ model/clf:2" in third.stdout  # predicted before training
    assert "reused it" in third.stdout
    assert versions(workspace) == {"1": None, "champion": 1}


def test_an_alias_no_one_provides_stops_plan_and_up_before_anything_runs(workspace: Path) -> None:
    spec = workspace / "mlspec.yaml"
    spec.write_text(SPEC + "---\nkind: Job\nname: use\ncommand: echo ${{inputs.m}}\ninputs: {m: model:clf@staging}\n")
    validated = mlspec("validate", str(workspace))
    assert "warning: no Model in the spec gives 'clf' the alias 'staging'" in validated.stderr

    planned = mlspec("plan", str(workspace), check=False)
    assert planned.returncode == 1
    assert "error: job/use: inputs.m: no version of model 'clf' has alias 'staging' in the registry" in planned.stdout
    applied = mlspec("up", str(workspace), "--yes", check=False)
    assert applied.returncode == 1 and "job/use: inputs.m: no version of model 'clf'" in applied.stderr
    assert "[train]" not in applied.stdout  # nothing ran
    assert not (workspace / ".mlspec" / "runs").exists()


def test_a_state_dict_model_finds_its_loader_beside_the_spec(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    (tmp_path / "net.py").write_text("import torch\n\n\ndef build():\n    return torch.nn.Linear(2, 1)\n")
    torch.save(torch.nn.Linear(2, 1).state_dict(), tmp_path / "weights.pt")
    (tmp_path / "mlspec.yaml").write_text(
        "kind: Model\nname: linear\npath: weights.pt\nflavor: torch\nloader: 'net:build'\n")
    try:
        done = mlspec("up", str(tmp_path), "--yes")
        assert "version 1" in done.stdout
        registry = client(f"sqlite:///{tmp_path / '.mlspec' / 'mlflow.db'}")
        (version,) = registry.search_model_versions("name='linear'")
        assert version.tags["mlspec.torch_format"] == "torchscript"
    finally:
        mlspec("down", str(tmp_path), "--yes", check=False)

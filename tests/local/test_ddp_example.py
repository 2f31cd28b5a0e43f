"""examples/torch-ddp end to end: two torchrun workers train one model with DDP on the CPU, rank 0's is served."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.local.conftest import EXAMPLES, mlspec, status

pytestmark = pytest.mark.e2e


@pytest.fixture
def ddp(tmp_path: Path) -> Iterator[Path]:
    pytest.importorskip("torch")
    target = tmp_path / "torch-ddp"
    shutil.copytree(EXAMPLES / "torch-ddp", target, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    yield target
    mlspec("down", str(target), "--yes", check=False)


def test_two_workers_train_one_model_that_the_endpoint_serves(ddp: Path) -> None:
    from mlflow.tracking import MlflowClient

    up = mlspec("up", str(ddp), "--yes")

    # Both workers trained, each on its half of the 1,437 training rows; only rank 0 reports and saves.
    assert "[train] [rank0]:ddp: 2 workers, 719 samples each, test accuracy" in up.stdout, up.stdout
    assert "[rank1]:ddp:" not in up.stdout
    uri = f"sqlite:///{(ddp / '.mlspec' / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("digits-ddp")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.data.params["world_size"] == "2" and run.data.metrics["accuracy"] > 0.9
    assert status(ddp)["resources"]["job/train"]["outputs"]["models"] == {"digits-ddp": 1}

    answer = mlspec("endpoint", "invoke", "digits-ddp", "--data", "request.json", cwd=ddp)
    assert json.loads(answer.stdout) == {"predictions": [0, 1]}  # the two digits in request.json
    assert "No changes." in mlspec("up", str(ddp), "--yes").stdout

"""`python -m mlspec.runtime.train` end to end, as a container runs it: the iris example against a real MLflow store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlspec.runtime import tracking
from mlspec.runtime.packaging import model_digest

pytestmark = pytest.mark.e2e

IRIS_CSV = Path(__file__).resolve().parents[2] / "examples" / "iris" / "data" / "iris.csv"


def test_iris_registers_a_new_version_per_run(store, make_iris_run, train_cli, tmp_path, monkeypatch) -> None:
    first = train_cli(make_iris_run(tmp_path / "run1"))
    # Another C: another model (identical files would reuse version 1).
    second = train_cli(make_iris_run(tmp_path / "run2", inputs={"data": {"path": str(IRIS_CSV)},
                                                                "C": {"value": 0.5}}))

    for outcome in (first, second):
        assert outcome.returncode == 0, outcome.stderr
        assert "Traceback" not in outcome.stderr
        assert outcome.result["status"] == "succeeded" and outcome.result["error"] is None
        assert "logistic: test accuracy" in outcome.stdout  # the job's output streams through
    assert [m["version"] for m in first.result["models"] + second.result["models"]] == [1, 2]
    assert "registered iris-clf:2" in second.stderr

    client = tracking.client(store.tracking_uri)
    model = second.result["models"][0]
    version = client.get_model_version("iris-clf", "2")
    assert version.run_id == second.result["run_id"]
    assert version.tags["mlspec.sha256"] == model["sha256"]
    assert version.tags["mlspec.job"] == "train" and version.tags["mlspec.hash"] == "sha256:iris-test"
    assert int(client.get_registered_model("iris-clf").aliases["champion"]) == 2

    run = client.get_run(second.result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params == {"algo": "logistic", "C": "0.5"}  # logged by the script itself
    assert run.data.metrics["accuracy"] > 0.9
    assert run.data.tags["mlspec.job"] == "train"
    assert [a.path for a in client.list_artifacts(run.info.run_id, "code")] == ["code/train.py"]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "logs")] == ["logs/job.log"]

    import mlflow.artifacts
    import mlflow.pyfunc

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.tracking_uri)
    local = mlflow.artifacts.download_artifacts(model["source_uri"], dst_path=str(tmp_path / "download"))
    assert model_digest(local) == model["sha256"]
    table = np.genfromtxt(IRIS_CSV, delimiter=",", names=True)
    rows = np.column_stack([table[n] for n in table.dtype.names if n != "species"])
    predicted = mlflow.pyfunc.load_model("models:/iris-clf/2").predict(rows)
    assert (np.asarray(predicted) == table["species"].astype(int)).mean() > 0.9


def test_a_failing_command_fails_the_run_and_registers_nothing(store, make_run, train_cli, tmp_path: Path) -> None:
    out = str(tmp_path / "work" / "model")
    outcome = train_cli(make_run(
        "echo starting; python -c \"raise ValueError('bad input')\"",
        job="broken", outputs={"model": {"path": out, "type": "model", "register_as": "cli-never"}},
    ))

    assert outcome.returncode == 1
    assert "Traceback" not in outcome.stderr  # the job's own traceback is in its log, not mlspec's
    result = outcome.result
    assert result["status"] == "failed" and result["exit_code"] == 1 and result["models"] == []
    assert result["log_tail"][-1] == "ValueError: bad input"
    assert result["error"] == "job 'broken' exited with code 1: ValueError: bad input"
    assert "mlspec: job 'broken' exited with code 1" in outcome.stderr
    client = tracking.client(store.tracking_uri)
    assert client.get_run(result["run_id"]).info.status == "FAILED"
    assert not [m for m in client.search_registered_models() if m.name == "cli-never"]


def test_a_missing_model_file_is_a_message_not_a_traceback(store, make_run, train_cli, tmp_path: Path) -> None:
    out = tmp_path / "work" / "outputs" / "model"
    outcome = train_cli(make_run("echo done", outputs={"model": {
        "path": str(out), "type": "model", "register_as": "cli-missing", "flavor": "sklearn"}}))

    assert outcome.returncode == 1
    assert "Traceback" not in outcome.stderr
    assert f"job 'job' wrote nothing to outputs.model ({out}); save the model there" in outcome.stderr
    assert outcome.result["status"] == "failed" and str(out) in outcome.result["error"]
    assert tracking.client(store.tracking_uri).get_run(outcome.result["run_id"]).info.status == "FAILED"


def test_an_unreadable_job_run_file_is_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "bad.json").write_text('{"job": "x"}')
    done = subprocess.run([sys.executable, "-m", "mlspec.runtime.train", str(tmp_path / "bad.json")],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])

    assert done.returncode == 2
    assert "is not a valid job run: experiment: Field required" in done.stderr
    assert "Traceback" not in done.stderr

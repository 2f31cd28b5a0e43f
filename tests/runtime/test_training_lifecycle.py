"""run_job in-process, as the local engine calls it: one MLflow run per job, ended with the right status."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mlspec.runtime import tracking
from mlspec.runtime.train import run_job


def _run(store, run_id: str):
    return tracking.client(store.tracking_uri).get_run(run_id)


def test_a_timeout_fails_the_run_in_about_the_timeout(store, make_run) -> None:
    started = time.monotonic()
    result = run_job(make_run("sleep 60", timeout=1, job="sleepy"))

    assert time.monotonic() - started < 4
    assert result.status == "failed" and result.timed_out
    assert result.error == "job 'sleepy' timed out after 1 s and was stopped"
    run = _run(store, result.run_id)
    assert run.info.status == "FAILED" and run.data.tags["mlspec.timed_out"] == "true"


def test_a_retried_job_succeeds_on_its_second_attempt(store, make_run, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    result = run_job(make_run(f"if [ ! -e {marker} ]; then touch {marker}; exit 1; fi; echo second", retries=2))

    assert result.status == "succeeded" and result.attempts == 2 and result.exit_code == 0
    run = _run(store, result.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["mlspec.attempts"] == "2"


def test_a_stopped_job_ends_killed(store, make_run) -> None:
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()

    result = run_job(make_run("sleep 60"), stop=stop)

    assert result.status == "cancelled"
    assert _run(store, result.run_id).info.status == "KILLED"


@pytest.mark.e2e
def test_params_the_script_logs_itself_keep_its_text(store, make_run, tmp_path: Path) -> None:
    # The spec says C: 1; the script parses a float and logs '1.0'. Logging the spec's '1' first would make
    # MLflow reject the script's value and crash it.
    (tmp_path / "log_c.py").write_text(
        "import sys, mlflow\nmlflow.log_param('C', float(sys.argv[2]))\nmlflow.log_metric('loss', 0.5)\n"
    )
    result = run_job(make_run("python log_c.py --C ${{inputs.C}} --algo ${{inputs.algo}}",
                              inputs={"C": {"value": 1}, "algo": {"value": "forest"}}))

    assert result.status == "succeeded", result.error
    run = _run(store, result.run_id)
    assert run.data.params == {"C": "1.0", "algo": "forest"}
    assert run.data.metrics == {"loss": 0.5}


def test_the_code_snapshot_leaves_caches_and_environments_out(store, make_run, tmp_path: Path) -> None:
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"")
    (tmp_path / "pkg" / "mod.py").write_text("")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").write_text("")
    (tmp_path / "train.py").write_text("")

    result = run_job(make_run("touch written-by-the-job.txt", job="snap"))

    from mlflow.artifacts import list_artifacts

    def files(path: str) -> list[str]:
        found = list_artifacts(run_id=result.run_id, artifact_path=path, tracking_uri=store.tracking_uri)
        return sorted(p for f in found for p in ([f.path] if not f.is_dir else files(f.path)))

    assert files("code") == ["code/pkg/mod.py", "code/train.py"]  # taken before the job wrote into its folder
    assert files("logs") == ["logs/job.log"]


@pytest.mark.e2e  # importing torch takes seconds
def test_a_torchscript_output_is_registered(store, make_run, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.jit.script(torch.nn.Linear(2, 1)).save(str(tmp_path / "net.pt"))

    result = run_job(make_run("cp net.pt ${{outputs.model}}/", outputs={"model": {
        "path": str(tmp_path / "work" / "model"), "type": "model", "register_as": "lifecycle-torch"}}))

    assert result.status == "succeeded", result.error
    [model] = result.models
    assert (model.name, model.version, model.flavor) == ("lifecycle-torch", 1, "torch")


@pytest.mark.e2e  # several seconds on a two-core machine
def test_jobs_in_threads_share_the_store_and_number_versions_without_gaps(store, make_run, tmp_path: Path) -> None:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    for i in range(6):  # distinct models: identical files would reuse one version
        (tmp_path / f"code{i}").mkdir()
        joblib.dump(LogisticRegression(C=1.0 + i).fit(np.eye(4), [0, 1, 0, 1]), tmp_path / f"code{i}" / "m.joblib")
    runs = [make_run("sleep 0.2; cp m.joblib ${{outputs.model}}/", job=f"t{i}", code=str(tmp_path / f"code{i}"),
                     workdir=str(tmp_path / f"w{i}"),
                     outputs={"model": {"path": str(tmp_path / f"w{i}" / "model"), "type": "model",
                                        "register_as": f"threads-{i % 2}", "aliases": ["champion"]}})
            for i in range(6)]
    results = []
    threads = [threading.Thread(target=lambda r=r: results.append(run_job(r))) for r in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r.error for r in results] == [None] * 6
    versions = sorted((m.name, m.version) for r in results for m in r.models)
    assert versions == [("threads-0", v) for v in (1, 2, 3)] + [("threads-1", v) for v in (1, 2, 3)]


def test_an_alias_never_moves_back_to_an_older_version(store, tmp_path: Path) -> None:
    from mlspec.runtime.packaging import set_alias

    mlflow_client = tracking.client(store.tracking_uri)
    mlflow_client.create_registered_model("alias-order")
    for _ in range(3):
        mlflow_client.create_model_version("alias-order", str(tmp_path), await_creation_for=0)
    set_alias(mlflow_client, "alias-order", "champion", 2)
    set_alias(mlflow_client, "alias-order", "champion", 1)  # a slower job of the same model, finishing later
    assert int(mlflow_client.get_model_version_by_alias("alias-order", "champion").version) == 2
    set_alias(mlflow_client, "alias-order", "champion", 3)
    assert int(mlflow_client.get_model_version_by_alias("alias-order", "champion").version) == 3


def test_a_missing_model_file_fails_the_run_with_the_folder_named(store, make_run, tmp_path: Path) -> None:
    out = tmp_path / "work" / "outputs" / "model"
    result = run_job(make_run("echo trained but saved nothing", job="forgetful", outputs={"model": {
        "path": str(out), "type": "model", "register_as": "lifecycle-none"}}))

    assert result.status == "failed" and result.exit_code == 0 and result.models == []
    assert result.error == (f"job 'forgetful' wrote nothing to outputs.model ({out}); save the model there (an MLflow"
                            " model, or a joblib/pickle/TorchScript file) - the command receives that path as"
                            " ${{outputs.model}}")
    assert _run(store, result.run_id).info.status == "FAILED"
    assert f"==> mlspec: error: job 'forgetful' wrote nothing to outputs.model ({out})" in \
        (tmp_path / "work" / "job.log").read_text()


def test_a_bad_placeholder_fails_without_running(store, make_run) -> None:
    result = run_job(make_run("echo ${{inputs.nope}}"))

    assert result.status == "failed" and result.attempts == 0
    assert "${{inputs.nope}}, which the job does not declare" in (result.error or "")
    assert _run(store, result.run_id).info.status == "FAILED"

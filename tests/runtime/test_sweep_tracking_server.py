"""The MLflow server a sweep's trials log to: the workspace's store over HTTP, only with the sweep's password."""

from __future__ import annotations

import multiprocessing
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # a real MLflow server


def _serve_and_log(folder: str) -> None:
    """The check itself, in a process of its own: MLflow's server app binds its stores and the process's tracking
    URI once per process (module globals), which would leak into every later test of this worker."""
    from mlflow import MlflowClient

    from mlspec.runtime.sweep.tracking_server import TrialTracking

    store = f"sqlite:///{Path(folder) / 'mlflow.db'}"
    local = MlflowClient(store)
    run_id = local.create_run(local.create_experiment("e", str(Path(folder) / "artifacts"))).info.run_id
    server = TrialTracking(store)
    try:
        assert server.uri.startswith("http://127.0.0.1:")
        try:
            urllib.request.urlopen(f"{server.uri}/api/2.0/mlflow/runs/get?run_id={run_id}", timeout=10)
            raise AssertionError("a request without the password was answered")
        except urllib.error.HTTPError as refused:
            assert refused.code == 401, refused.code
        os.environ.update(server.env)
        MlflowClient(server.uri).log_metric(run_id, "score", 0.5, step=3)
    finally:
        server.close()
    [metric] = local.get_metric_history(run_id, "score")
    assert (metric.value, metric.step) == (0.5, 3), metric


def test_trials_log_through_it_with_the_password_and_nobody_without(tmp_path: Path) -> None:
    child = multiprocessing.get_context("fork").Process(target=_serve_and_log, args=(str(tmp_path),))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 0, "the check failed: see its traceback above"

"""The MLflow server a sweep's trials log to: the workspace's store over HTTP, only with the sweep's password."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mlspec.runtime.sweep.tracking_server import TrialTracking

pytestmark = pytest.mark.e2e  # a real MLflow server


def test_trials_log_through_it_with_the_password_and_nobody_without(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    local = MlflowClient(store)
    run_id = local.create_run(local.create_experiment("e", str(tmp_path / "artifacts"))).info.run_id
    server = TrialTracking(store)
    try:
        assert server.uri.startswith("http://127.0.0.1:")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{server.uri}/api/2.0/mlflow/runs/get?run_id={run_id}", timeout=10)
        assert refused.value.code == 401
        for key, value in server.env.items():
            monkeypatch.setenv(key, value)
        MlflowClient(server.uri).log_metric(run_id, "score", 0.5, step=3)
    finally:
        server.close()
    [metric] = local.get_metric_history(run_id, "score")
    assert (metric.value, metric.step) == (0.5, 3)

"""AutoML through the real CLI on examples/automl with a short budget: every candidate an MLflow child run, the
leaderboard ranked by the primary metric, the registered pipeline served by the endpoint, and an unchanged job
not run again."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.local.conftest import EXAMPLES, mlspec

pytestmark = pytest.mark.e2e

BUDGET_S = 24
ALLOWED = {"LogisticRegression", "LightGBM", "RandomForest", "ExtremeRandomTrees", "GradientBoosting"}


@pytest.fixture(scope="module")
def automl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, float]]:
    """examples/automl with a 24-second budget, brought up once: (folder, `up` output, the job's seconds)."""
    folder = tmp_path_factory.mktemp("automl") / "automl"
    shutil.copytree(EXAMPLES / "automl", folder, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    spec = folder / "mlspec.yaml"
    text = spec.read_text()
    assert "timeout_minutes: 1\n" in text and "max_trials: 400" in text
    spec.write_text(text.replace("timeout_minutes: 1\n", f"timeout_minutes: {BUDGET_S / 60:.1f}\n")
                    .replace("trial_timeout_minutes: 0.5", "trial_timeout_minutes: 0.2")
                    .replace("n_cross_validations: 5", "n_cross_validations: 3")
                    .replace("max_trials: 400", "max_trials: 100000"))  # the budget, not the trials, ends it
    up = mlspec("up", str(folder), "--yes", timeout=240)
    took = re.search(r"✓ job/wine-automl ([\d.]+)s", up.stdout)
    assert took, up.stdout
    yield folder, up.stdout, float(took.group(1))
    mlspec("down", str(folder), "--yes", check=False)


def _runs(folder: Path) -> tuple[object, list[object]]:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / '.mlspec' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("wine-automl")
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    return parents[0], [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]


def test_the_budget_is_kept_and_every_candidate_is_a_child_run(automl: tuple[Path, str, float]) -> None:
    folder, out, took = automl
    # The searches end at the budget; start-up, the refit, the last child runs and registering follow it.
    assert BUDGET_S * 0.8 < took < BUDGET_S + 60, out
    assert "with 2 process(es)" in out and "registered wine-clf:1" in out
    log = mlspec("logs", "wine-automl", str(folder)).stdout  # the job's lines, its searches' included
    assert "search 0: best of" in log and "search 1: best of" in log and "best: " in log
    parent, children = _runs(folder)
    assert parent.info.status == "FINISHED" and parent.data.params["primary_metric"] == "AUC_weighted"
    assert len(children) >= 10 and int(parent.data.tags["mlspec.automl.candidates"]) == len(children)
    assert {c.data.tags["mlspec.automl.algorithm"] for c in children} <= ALLOWED
    assert {c.data.tags["mlspec.automl.search"] for c in children} == {"0", "1"}  # both searches ran
    scored = [c for c in children if "AUC_weighted" in c.data.metrics]
    assert len(scored) >= len(children) - 2 and all(0 <= c.data.metrics["AUC_weighted"] <= 1 for c in scored)
    assert all(c.data.params["learner"] and len(c.data.params) > 2 for c in children)  # hyperparameters
    best = next(c for c in children if c.info.run_id == parent.data.tags["mlspec.automl.best_run"])
    assert best.data.metrics["AUC_weighted"] == pytest.approx(parent.data.metrics["AUC_weighted"])
    assert best.data.metrics["AUC_weighted"] == max(c.data.metrics["AUC_weighted"] for c in scored) > 0.95


def test_the_leaderboard_ranks_by_the_primary_metric(automl: tuple[Path, str, float]) -> None:
    folder, _, _ = automl
    board = json.loads(mlspec("runs", str(folder), "--leaderboard", "wine-automl", "--limit", "0", "--json").stdout)
    rows = board["leaderboard"]
    values = [r["value"] for r in rows if r["value"] is not None]
    assert board["metric"] == "AUC_weighted" and len(rows) == board["candidates"] >= 10
    assert values == sorted(values, reverse=True) and [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0]["selected"] and sum(r["selected"] for r in rows) == 1
    text = mlspec("runs", str(folder), "--leaderboard", "wine-automl", "--limit", "3").stdout.splitlines()
    assert "AUC_weighted" in text[0] and text[1].split()[0] == "1*" and text[1].split()[1] == rows[0]["algorithm"]
    assert len([line for line in text if re.match(r"\s+\d", line)]) == 3
    missing = mlspec("runs", str(folder), "--leaderboard", "nope", check=False)
    assert missing.returncode != 0 and "no AutoML run of job 'nope'" in missing.stderr


def test_the_endpoint_serves_the_registered_pipeline(automl: tuple[Path, str, float]) -> None:
    folder, _, _ = automl
    models = json.loads(mlspec("models", str(folder), "--json").stdout)
    assert [(m["name"], [v["version"] for v in m["versions"]]) for m in models] == [("wine-clf", [1])]
    invoked = mlspec("endpoint", "invoke", "wine", "--data", str(folder / "request.json"), str(folder))
    # Rows 1, 66 and 131 of the table (request.json): one wine of each cultivar, predicted as labelled.
    assert json.loads(invoked.stdout)["predictions"] == ["class_0", "class_1", "class_2"]


def test_an_unchanged_job_is_not_run_again(automl: tuple[Path, str, float]) -> None:
    folder, _, _ = automl
    _, before = _runs(folder)
    started = time.monotonic()
    again = mlspec("up", str(folder), "--yes")
    assert "No changes" in again.stdout and time.monotonic() - started < 30
    _, after = _runs(folder)
    assert len(after) == len(before)

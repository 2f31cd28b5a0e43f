"""AutoML's names: every Azure ML metric and algorithm maps to something FLAML searches, the metric values mlspec
reports are the metrics' own definitions, and the searches share learners and trials as they should."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

from mlspec.resolve.automl import remaining
from mlspec.runtime.automl.metrics import FUNCTIONS, better, flaml_metric, value_from_loss
from mlspec.runtime.automl.runner import shares
from mlspec.runtime.automl.trials import TrialLog, algorithm_name
from mlspec.spec.automl import AutoMLJob
from mlspec.spec.automl_catalog import ALGORITHMS, METRICS, TASKS, UNSEARCHED, algorithms_for

flaml_ml = pytest.importorskip("flaml.automl.ml")


def _job(**fields: object) -> AutoMLJob:
    return AutoMLJob.model_validate({"name": "pick", "type": "automl", "task": "classification",
                                     "training_data": "data:wine", "target_column_name": "cultivar", **fields})


@pytest.mark.parametrize("task", TASKS)
def test_every_algorithm_is_a_flaml_learner_of_its_task(task: str) -> None:
    from flaml.automl.task.factory import task_factory

    learners = task_factory(task).estimators
    for name in algorithms_for(task):  # type: ignore[arg-type]
        flaml_name = ALGORITHMS[name].flaml[task]  # type: ignore[index]
        assert flaml_name in learners, name
        learner = learners[flaml_name]
        # FLAML's search space for the task: a learner of the other task only would raise or give nothing.
        assert learner.search_space(data_size=(100, 4), task=task_factory(task)), name
        assert "xgb" not in flaml_name
    assert not set(UNSEARCHED) & set(ALGORITHMS)


def test_learner_names_map_back_to_azure_names() -> None:
    assert algorithm_name("lgbm") == "LightGBM" and algorithm_name("extra_tree") == "ExtremeRandomTrees"
    assert algorithm_name("histgb") == "GradientBoosting" and algorithm_name("something") == "something"


def test_every_metric_is_flaml_builtin_or_a_function_of_ours() -> None:
    for name, metric in METRICS.items():
        given = flaml_metric(name, classes=2)
        if metric.flaml:
            assert given in flaml_ml.sklearn_metric_name_set, name
        else:
            assert callable(given) and given is FUNCTIONS[name], name
    assert flaml_metric("AUC_weighted", classes=2) == "roc_auc_weighted"
    assert flaml_metric("AUC_weighted", classes=3) == "roc_auc_ovr_weighted"  # FLAML's weighted AUC is binary


@pytest.fixture(scope="module")
def wine() -> tuple[np.ndarray, np.ndarray, LogisticRegression]:
    x, y = load_wine(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unconverged on purpose
        model = LogisticRegression(max_iter=50, C=0.01).fit(x[::2], y[::2])  # imperfect: metrics below 1
    return x[1::2], y[1::2], model


def test_builtin_metrics_report_the_azure_values(wine: tuple[np.ndarray, np.ndarray, LogisticRegression]) -> None:
    x, y, model = wine
    predicted, scores = model.predict(x), model.predict_proba(x)
    loss = flaml_ml.metric_loss_score("accuracy", predicted, y)
    assert value_from_loss("accuracy", loss) == pytest.approx(accuracy_score(y, predicted))
    loss = flaml_ml.metric_loss_score(flaml_metric("AUC_weighted", 3), scores, y)
    assert value_from_loss("AUC_weighted", loss) == pytest.approx(
        roc_auc_score(y, scores, multi_class="ovr", average="weighted"))
    target = x[:, 0]
    guess = target + np.linspace(-0.5, 0.5, len(target))
    spread = float(np.ptp(target))
    for name, expected in (("r2_score", r2_score(target, guess)),
                           ("normalized_root_mean_squared_error", root_mean_squared_error(target, guess) / spread),
                           ("normalized_mean_absolute_error", mean_absolute_error(target, guess) / spread)):
        loss = flaml_ml.metric_loss_score(METRICS[name].flaml, guess, target)
        assert value_from_loss(name, loss, spread) == pytest.approx(expected), name


def test_metric_functions_compute_the_azure_definitions(
        wine: tuple[np.ndarray, np.ndarray, LogisticRegression]) -> None:
    x, y, model = wine
    predicted = model.predict(x)
    labels = np.unique(y)
    expected = {"precision_score_weighted": precision_score(y, predicted, average="weighted"),
                "f1_score_weighted": f1_score(y, predicted, average="weighted"),
                # (macro recall - 1/3) / (1 - 1/3): chance scores 0, a perfect model 1
                "norm_macro_recall": (recall_score(y, predicted, average="macro") - 1 / 3) / (2 / 3)}
    for name, value in expected.items():
        loss, logged = FUNCTIONS[name](x, y, model, labels, x, y)
        assert 0 < value < 1 and logged[name] == pytest.approx(value) and loss == pytest.approx(1 - value), name
    loss, logged = FUNCTIONS["average_precision_score_weighted"](x, y, model, labels)
    assert 0 < logged["average_precision_score_weighted"] <= 1 and loss == pytest.approx(
        1 - logged["average_precision_score_weighted"])
    assert value_from_loss("norm_macro_recall", loss) == pytest.approx(1 - loss)

    class Ranked:  # predicts the rank order of the truth exactly: Spearman 1
        def predict(self, rows: np.ndarray) -> np.ndarray:
            return np.arange(len(rows)) ** 2

    loss, logged = FUNCTIONS["spearman_correlation"](x[:10], np.arange(10) * 3.0, Ranked())
    assert logged["spearman_correlation"] == pytest.approx(1.0) and loss == pytest.approx(0.0)


def test_better_follows_the_metric_goal() -> None:
    assert better("accuracy", 0.9, 0.8) and not better("accuracy", 0.8, 0.9)
    assert better("normalized_root_mean_squared_error", 0.1, 0.2)


def test_searches_share_learners_and_trials() -> None:
    assert shares(["a", "b", "c", "d", "e"], 100, 2) == [(["a", "c", "e"], 50), (["b", "d"], 50)]
    assert shares(["a", "b", "c"], 7, 3) == [(["a"], 3), (["b"], 2), (["c"], 2)]
    assert shares(["a"], 10, 2) == [(["a"], 10)]  # one learner: one search, whatever the concurrency
    assert shares(["a", "b", "c"], 1, 3) == [(["a", "b", "c"], 1)]  # one trial: one search


def test_the_searched_algorithms_are_the_allowed_less_the_blocked() -> None:
    assert remaining(_job()) == algorithms_for("classification")
    job = _job(training={"allowed_training_algorithms": ["LightGBM", "KNN", "RandomForest"],
                         "blocked_training_algorithms": ["KNN"]})
    assert remaining(job) == ["LightGBM", "RandomForest"]
    assert remaining(_job(task="regression", training={"blocked_training_algorithms": ["LightGBM"]})) == [
        "RandomForest", "ExtremeRandomTrees", "KNN", "SGD", "GradientBoosting", "ElasticNet", "LassoLars"]
    assert _job().metric == "accuracy" and _job(task="regression").metric == "normalized_root_mean_squared_error"


def test_a_trial_log_is_read_up_to_its_last_whole_line(tmp_path: Path) -> None:
    path = tmp_path / "trials.jsonl"
    first = {"record_id": 0, "learner": "lgbm", "validation_loss": 0.1, "config": {"n_estimators": 4}}
    path.write_text(json.dumps(first) + "\n" + '{"record_id": 1, "lear')  # the second line is being written
    log = TrialLog(path, 0)
    assert log.new_records() == [first] and log.new_records() == []
    with open(path, "a") as handle:
        handle.write('ner": "rf", "validation_loss": 0.2}\n{"curr_best_record_id": 0}\n')
    assert [r["record_id"] for r in log.new_records()] == [1] and log.best_record == 0


def test_plan_says_when_flaml_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mlspec.backends.local import capacity
    from mlspec.graph import analyze

    (tmp_path / "wine.csv").write_text("alcohol,cultivar\n14.2,class_0\n")
    (tmp_path / "mlspec.yaml").write_text(
        "kind: Data\nname: wine\npath: wine.csv\n---\nkind: Job\nname: pick\ntype: automl\n"
        "task: classification\ntraining_data: data:wine\ntarget_column_name: cultivar\n")
    analysis = analyze([tmp_path])
    assert analysis.graph is not None and not analysis.diagnostics.items
    assert capacity.check_local_capacity(analysis.graph.spec, gpus=[]) == []  # installed here
    monkeypatch.setattr(capacity, "AUTOML_PACKAGES", ("flaml", "mlspec_package_that_is_not_installed"))
    [found] = capacity.check_local_capacity(analysis.graph.spec, gpus=[])
    assert found.summary == ("job 'pick' needs mlspec_package_that_is_not_installed where mlspec runs, and it is "
                             "not installed")
    assert found.span is not None and found.span.line == 7 and "mlspec[automl]" in (found.hint or "")

"""Azure ML's primary metrics as FLAML searches them: FLAML's built-in metric where one is the same, else a metric
function FLAML calls with each candidate; and the metric's value from FLAML's loss."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mlspec.spec.automl_catalog import METRICS

MetricFunction = Callable[..., tuple[float, dict[str, float]]]


def _labels(y_val: Any, labels: Any) -> np.ndarray:
    return np.asarray(labels) if labels is not None else np.unique(np.asarray(y_val))


def _precision_weighted(y_val: Any, predicted: Any, labels: np.ndarray) -> float:
    from sklearn.metrics import precision_score

    return float(precision_score(y_val, predicted, labels=labels, average="weighted", zero_division=0))


def _f1_weighted(y_val: Any, predicted: Any, labels: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y_val, predicted, labels=labels, average="weighted", zero_division=0))


def _norm_macro_recall(y_val: Any, predicted: Any, labels: np.ndarray) -> float:
    """Macro recall rescaled so that chance is 0 and perfect is 1: (recall - R) / (1 - R), R = 1 / classes
    (Azure ML's definition)."""
    from sklearn.metrics import recall_score

    chance = 1.0 / max(len(labels), 2)
    recall = float(recall_score(y_val, predicted, labels=labels, average="macro", zero_division=0))
    return (recall - chance) / (1.0 - chance)


def _average_precision_weighted(y_val: Any, scores: Any, labels: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score
    from sklearn.preprocessing import label_binarize

    scores = np.asarray(scores)
    if len(labels) == 2:
        return float(average_precision_score(np.asarray(y_val) == labels[1], scores[:, 1]))
    truth = label_binarize(y_val, classes=labels)
    return float(average_precision_score(truth, scores, average="weighted"))


def _spearman(y_val: Any, predicted: Any) -> float:
    from scipy.stats import spearmanr

    value = float(spearmanr(np.asarray(y_val), np.asarray(predicted)).statistic)
    return 0.0 if np.isnan(value) else value  # a constant prediction ranks nothing


def _on_predictions(name: str, score: Callable[[Any, Any, np.ndarray], float]) -> MetricFunction:
    def metric(x_val: Any, y_val: Any, estimator: Any, labels: Any, *_: Any) -> tuple[float, dict[str, float]]:
        value = score(y_val, estimator.predict(x_val), _labels(y_val, labels))
        return 1.0 - value, {name: value}

    return metric


def _average_precision(x_val: Any, y_val: Any, estimator: Any, labels: Any, *_: Any) -> tuple[float, dict[str, float]]:
    value = _average_precision_weighted(y_val, estimator.predict_proba(x_val), _labels(y_val, labels))
    return 1.0 - value, {"average_precision_score_weighted": value}


def _spearman_metric(x_val: Any, y_val: Any, estimator: Any, *_: Any) -> tuple[float, dict[str, float]]:
    value = _spearman(y_val, estimator.predict(x_val))
    return 1.0 - value, {"spearman_correlation": value}


FUNCTIONS: dict[str, MetricFunction] = {
    "precision_score_weighted": _on_predictions("precision_score_weighted", _precision_weighted),
    "f1_score_weighted": _on_predictions("f1_score_weighted", _f1_weighted),
    "norm_macro_recall": _on_predictions("norm_macro_recall", _norm_macro_recall),
    "average_precision_score_weighted": _average_precision,
    "spearman_correlation": _spearman_metric,
}


def flaml_metric(name: str, classes: int) -> str | MetricFunction:
    """What FLAML is given as `metric` for Azure ML's metric `name` (`classes`: distinct target values)."""
    metric = METRICS[name]
    if not metric.flaml:
        return FUNCTIONS[name]
    if metric.flaml == "roc_auc_weighted" and classes > 2:
        return "roc_auc_ovr_weighted"  # FLAML's roc_auc_weighted is the binary form
    return metric.flaml


def value_from_loss(name: str, loss: float, target_range: float = 1.0) -> float:
    """The metric's value for FLAML's loss: 1 - loss for a metric to maximise, the loss (over the target's range,
    for a normalised one) for a metric to minimise."""
    metric = METRICS[name]
    if metric.goal == "maximize":
        return 1.0 - loss
    return loss / target_range if metric.normalized and target_range > 0 else loss


def better(name: str, a: float, b: float) -> bool:
    """Whether value `a` of metric `name` beats `b`."""
    return a > b if METRICS[name].goal == "maximize" else a < b

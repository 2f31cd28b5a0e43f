"""What an AutoML job may name: Azure ML's primary metrics and training algorithms, and FLAML's name for each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = ("classification", "regression")


@dataclass(frozen=True, slots=True)
class Metric:
    """A primary metric: the task it scores, whether higher is better, and how FLAML searches it.

    `flaml` is FLAML's built-in metric of the same definition, or "" where FLAML has none and mlspec passes FLAML a
    metric function of its own (mlspec.runtime.automl.metrics). FLAML minimises a loss: 1 - value for a metric to
    maximise, the value itself for one to minimise (normalised metrics: the value times the target's range).
    """

    task: Task
    goal: Literal["maximize", "minimize"]
    flaml: str
    normalized: bool = False  # divided by the range of the target column, as Azure ML reports it


METRICS: dict[str, Metric] = {
    # classification
    "accuracy": Metric("classification", "maximize", "accuracy"),
    # Binary targets: roc_auc_weighted; more classes: roc_auc_ovr_weighted (chosen when the labels are known).
    "AUC_weighted": Metric("classification", "maximize", "roc_auc_weighted"),
    "average_precision_score_weighted": Metric("classification", "maximize", ""),
    "norm_macro_recall": Metric("classification", "maximize", ""),
    "precision_score_weighted": Metric("classification", "maximize", ""),
    "f1_score_weighted": Metric("classification", "maximize", ""),
    # regression
    "r2_score": Metric("regression", "maximize", "r2"),
    "normalized_root_mean_squared_error": Metric("regression", "minimize", "rmse", normalized=True),
    "normalized_mean_absolute_error": Metric("regression", "minimize", "mae", normalized=True),
    "spearman_correlation": Metric("regression", "maximize", ""),
}

# Azure ML's default primary metric per task.
DEFAULT_METRICS: dict[Task, str] = {"classification": "accuracy", "regression": "normalized_root_mean_squared_error"}


@dataclass(frozen=True, slots=True)
class Algorithm:
    """A training algorithm: FLAML's learner name for each task that has it, and the estimator it trains."""

    flaml: dict[Task, str]
    estimator: str


_BOTH: tuple[Task, ...] = ("classification", "regression")

ALGORITHMS: dict[str, Algorithm] = {
    "LogisticRegression": Algorithm({"classification": "lrl2"}, "scikit-learn LogisticRegression (L2 penalty)"),
    "LightGBM": Algorithm(dict.fromkeys(_BOTH, "lgbm"), "LightGBM LGBMClassifier / LGBMRegressor"),
    "RandomForest": Algorithm(dict.fromkeys(_BOTH, "rf"), "scikit-learn RandomForestClassifier / Regressor"),
    "ExtremeRandomTrees": Algorithm(dict.fromkeys(_BOTH, "extra_tree"),
                                    "scikit-learn ExtraTreesClassifier / Regressor"),
    "KNN": Algorithm(dict.fromkeys(_BOTH, "kneighbor"), "scikit-learn KNeighborsClassifier / Regressor"),
    "SGD": Algorithm(dict.fromkeys(_BOTH, "sgd"), "scikit-learn SGDClassifier / SGDRegressor"),
    "LinearSVM": Algorithm({"classification": "svc"}, "scikit-learn LinearSVC"),
    "GradientBoosting": Algorithm(dict.fromkeys(_BOTH, "histgb"),
                                  "scikit-learn HistGradientBoostingClassifier / Regressor (histogram-based)"),
    "ElasticNet": Algorithm({"regression": "enet"}, "scikit-learn ElasticNet"),
    "LassoLars": Algorithm({"regression": "lassolars"}, "scikit-learn LassoLars"),
}

# Azure ML names mlspec knows but does not search, and why.
_XGBOOST = ("the best pipeline is served with scikit-learn and LightGBM alone; LightGBM is the gradient-boosted "
            "trees learner offered")
_NO_LEARNER = "FLAML has no learner for it"
UNSEARCHED: dict[str, str] = {
    "XGBoostClassifier": _XGBOOST,
    "XGBoostRegressor": _XGBOOST,
    "DecisionTree": _NO_LEARNER + " (RandomForest and ExtremeRandomTrees search tree ensembles)",
    "SVM": _NO_LEARNER + " (LinearSVM searches a linear support vector machine)",
    "MultinomialNaiveBayes": _NO_LEARNER,
    "BernoulliNaiveBayes": _NO_LEARNER,
    "AveragedPerceptronClassifier": _NO_LEARNER,
    "TabnetClassifier": _NO_LEARNER,
    "TabnetRegressor": _NO_LEARNER,
    "FastLinearRegressor": _NO_LEARNER,
    "OnlineGradientDescentRegressor": _NO_LEARNER,
}


def algorithms_for(task: Task) -> list[str]:
    """The Azure ML algorithm names searched for `task`, in the catalog's order."""
    return [name for name, algorithm in ALGORITHMS.items() if task in algorithm.flaml]


def metrics_for(task: Task) -> list[str]:
    return [name for name, metric in METRICS.items() if metric.task == task]

"""One AutoML search process: `python -m mlspec.runtime.automl.worker SEARCH.json`.

FLAML searches the learners it is given within the time and trial budget, logging every candidate to
trials.jsonl as it goes; the best candidate's estimator, cloned with its hyperparameters, is then refitted behind
the shared preprocessing on the whole table and saved as a scikit-learn pipeline (model.joblib) beside best.json.
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from mlspec.runtime.automl.contract import BEST_FILE, MODEL_FILE, TRIALS_FILE, Search
from mlspec.runtime.automl.metrics import flaml_metric, value_from_loss
from mlspec.runtime.automl.table import as_objects, features_and_target, preprocessor, read_table


def search(config: Search) -> dict[str, Any]:
    import joblib
    import numpy as np
    from flaml.automl import AutoML
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    started = time.monotonic()
    folder = Path(config.folder)
    folder.mkdir(parents=True, exist_ok=True)
    features, y = features_and_target(read_table(config.data), config.target)
    features = as_objects(features)
    prepare = preprocessor(features)
    matrix = prepare.fit_transform(features)
    classes = len(np.unique(y)) if config.task == "classification" else 0
    target_range = float(np.ptp(y)) if config.task == "regression" else 1.0
    budget = max(1.0, config.deadline - config.reserve_s - time.time())  # imports and reading took their share
    settings: dict[str, Any] = {
        "task": config.task, "metric": flaml_metric(config.metric, classes), "estimator_list": config.learners,
        # Refitting on the whole table is done below, behind the preprocessing: FLAML's own refit would be wasted.
        "time_budget": budget, "max_iter": config.max_iter, "retrain_full": False,
        "log_file_name": str(folder / TRIALS_FILE), "log_type": "all", "seed": config.seed, "n_jobs": config.n_jobs,
        "verbose": 0, "mlflow_logging": False,  # the runner logs every candidate as a child run of the job's run
        "eval_method": "cv" if config.n_splits else "auto",
    }
    if config.n_splits:
        settings["n_splits"] = config.n_splits
    if config.trial_time_s:
        settings["train_time_limit"] = config.trial_time_s
    automl = AutoML()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and deprecation chatter from every candidate
        automl.fit(matrix, y, **settings)
        searched = time.monotonic() - started
        if automl.best_estimator is None or automl.model is None:
            raise SystemExit("no candidate finished within the time budget: raise timeout_minutes")
        pipeline = Pipeline([("preprocess", clone(prepare)), ("model", clone(automl.model.estimator))])
        pipeline.fit(features, y)
    joblib.dump(pipeline, folder / MODEL_FILE)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    best = {"learner": automl.best_estimator, "loss": float(automl.best_loss),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "value": value_from_loss(config.metric, float(automl.best_loss), target_range),
            "config": _plain(automl.best_config), "searched_s": round(searched, 3),
            "total_s": round(time.monotonic() - started, 3), "target_range": target_range}
    (folder / BEST_FILE).write_text(json.dumps(best))
    return best


def _plain(value: Any) -> Any:
    """numpy scalars in FLAML's configs as JSON values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "item"):
        return value.item()
    return value


def main(argv: list[str]) -> int:
    logging.getLogger("flaml.automl").setLevel(logging.WARNING)
    config = Search.model_validate_json(Path(argv[1]).read_text())
    best = search(config)
    print(f"best of {', '.join(config.learners)}: {best['learner']} {config.metric} {best['value']:.6g} "
          f"(searched {best['searched_s']:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""One AutoML search process's work, in process: FLAML within its budget over a table with a text column and
missing values, every candidate in its log, and the best pipeline refitted on raw rows."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from mlspec.runtime.automl.contract import BEST_FILE, MODEL_FILE, TRIALS_FILE, Search
from mlspec.runtime.automl.trials import TrialLog

pytest.importorskip("flaml.automl.automl")


def test_a_search_keeps_its_budget_and_saves_a_pipeline_that_takes_raw_rows(tmp_path: Path) -> None:
    from mlspec.runtime.automl.worker import search

    rng = np.random.default_rng(0)
    rows = 240
    size = rng.uniform(20, 200, rows)
    district = rng.choice(["north", "south", "east"], rows)
    price = 3.0 * size + np.where(district == "south", 150.0, 0.0) + rng.normal(0, 5, rows)
    table = pd.DataFrame({"size": size, "district": district, "price": price})
    table.loc[::17, "size"] = np.nan  # imputed
    table.loc[::23, "district"] = None
    data = tmp_path / "houses.parquet"
    table.to_parquet(data)
    budget = 4.0
    config = Search(task="regression", data=str(data), target="price", metric="r2_score",
                    learners=["lgbm", "enet"], deadline=time.time() + budget, reserve_s=0.5, max_iter=200,
                    n_splits=3, seed=1, folder=str(tmp_path / "search"))
    started = time.monotonic()
    best = search(config)
    assert best["searched_s"] <= budget + 3.0  # FLAML stops at its budget (a candidate may finish past it)
    assert time.monotonic() - started < budget + 30.0
    assert best["learner"] in ("lgbm", "enet") and best["value"] > 0.8  # price is nearly linear in size

    folder = Path(config.folder)
    assert json.loads((folder / BEST_FILE).read_text())["value"] == best["value"]
    log = TrialLog(folder / TRIALS_FILE, 0)
    records = log.new_records()
    assert len(records) >= 2 and {r["learner"] for r in records} <= {"lgbm", "enet"}
    assert log.best_record is not None and min(r["validation_loss"] for r in records) == pytest.approx(best["loss"])

    pipeline = joblib.load(folder / MODEL_FILE)
    assert [name for name, _ in pipeline.steps] == ["preprocess", "model"]
    assert type(pipeline.steps[1][1]).__module__.split(".")[0] in ("lightgbm", "sklearn")  # no FLAML object
    raw = pd.DataFrame({"size": [100.0, 100.0, None], "district": ["south", "north", "unknown"]})
    predicted = pipeline.predict(raw)  # an unseen district and a missing size are taken, not refused
    assert predicted[0] - predicted[1] > 75  # it learnt the district's premium (150)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fitted on a frame, given an array: scikit-learn says so
        as_array = pipeline.predict(raw.to_numpy(dtype=object))  # the scoring server may hand it an array
    assert np.allclose(predicted, as_array)

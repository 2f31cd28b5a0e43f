"""Batch scoring through a scoring script, in-process on a real MLflow store: init() once on the verified model's
folder, run(mini_batch) on each mini-batch's DataFrame, its rows written as predictions are, its errors failing
that mini-batch alone."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import pytest
from test_batch_support import iris_frame, make_run, write
from test_serving_support import MODEL, IrisStore, shared_store

from mlspec.runtime.batch.runner import run_batch

SCRIPT = '''
import os
import pickle
from pathlib import Path

model = None
inits = 0


def init():
    global model, inits
    inits += 1
    with (Path(os.environ["AZUREML_MODEL_DIR"]) / "model.pkl").open("rb") as handle:
        model = pickle.load(handle)


def run(mini_batch):
    if (mini_batch["note"] == "row 70").any():
        raise ValueError("row 70 is cursed")
    features = mini_batch[list(model.feature_names_in_)]
    return [{"label": int(p), "inits": inits} for p in model.predict(features)]
'''


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> IrisStore:
    return shared_store(tmp_path_factory)


def test_run_scores_each_mini_batch_frame_and_a_failure_fails_its_mini_batch(store: IrisStore,
                                                                              tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "batch_score.py").write_text(textwrap.dedent(SCRIPT))
    data = iris_frame(store, 200)
    write(data, tmp_path / "in.csv")
    run = make_run(store.tracking_uri, f"models:/{MODEL}/1", tmp_path / "in.csv", tmp_path / "out",
                   max_concurrency=2, code=str(code), scoring_script="batch_score.py")
    result = run_batch(run)
    assert result.status == "succeeded", result.error
    assert (result.rows_scored, result.rows_failed) == (136, 64)  # rows 64-127: the mini-batch holding row 70
    (failed,) = result.failures
    assert failed.first_row == 64 and "run() failed: ValueError: row 70 is cursed" in failed.error
    with (tmp_path / "out" / "predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    kept = [i for i in range(200) if not 64 <= i < 128]
    assert [int(r["row"]) for r in rows] == kept
    expected = store.expected(data.iloc[kept][list(store.features.columns)])
    assert [int(r["label"]) for r in rows] == expected
    assert {r["inits"] for r in rows} == {"1"}  # init() once for the run

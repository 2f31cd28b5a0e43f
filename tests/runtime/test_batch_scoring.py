"""The batch scorer in-process on a real MLflow store: output modes, error threshold, retries, timeouts, refusals."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_batch_support import iris_frame, make_run, numbers_frame, register_flaky, write
from test_serving_support import MODEL, IrisStore, copy_model, register, shared_store

from mlspec.runtime.batch.runner import run_batch


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> IrisStore:
    return shared_store(tmp_path_factory)


@pytest.fixture(scope="module")
def flaky(store: IrisStore, tmp_path_factory: pytest.TempPathFactory) -> str:
    return register_flaky(store, tmp_path_factory.mktemp("flaky"))


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_append_writes_one_file_of_predictions_with_row_identity(store: IrisStore, tmp_path: Path) -> None:
    data = iris_frame(store, 300)
    inputs = tmp_path / "in"
    write(data.iloc[:130], inputs / "a.csv")
    write(data.iloc[130:250], inputs / "b.parquet")
    write(data.iloc[250:], inputs / "c.jsonl")
    run = make_run(store.tracking_uri, f"models:/{MODEL}/1", inputs, tmp_path / "out", max_concurrency=3)
    result = run_batch(run)
    assert result.status == "succeeded", result.error
    assert (result.rows_scored, result.rows_failed, result.model_version) == (300, 0, "1")
    assert result.outputs == [str(tmp_path / "out" / "predictions.csv")]
    rows = read(tmp_path / "out" / "predictions.csv")
    assert [(r["source"], int(r["row"])) for r in rows] == (
        [("a.csv", i) for i in range(130)] + [("b.parquet", i) for i in range(120)] + [("c.jsonl", i)
                                                                                      for i in range(50)])
    expected = store.expected(data[list(store.features.columns)])
    assert [int(r["prediction"]) for r in rows] == expected
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["_manifest.json", "predictions.csv"]


def test_a_batchable_models_mini_batches_are_scored_in_groups_with_the_same_output(
        store: IrisStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlspec.runtime.batch.groups as groups
    import mlspec.runtime.batch.runner as runner

    write(iris_frame(store, 1000), tmp_path / "in.csv")
    calls: list[int] = []
    real_score = runner.score

    def counted(model: object, table: object, features: object = None) -> object:
        calls.append(table.num_rows)  # type: ignore[attr-defined]
        return real_score(model, table, features)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "score", counted)
    grouped = run_batch(make_run(store.tracking_uri, f"models:/{MODEL}/1", tmp_path / "in.csv", tmp_path / "grouped",
                                 mini_batch_size=10))
    assert (grouped.status, grouped.batches, grouped.rows_scored) == ("succeeded", 100, 1000)
    assert len(calls) < 10 and sum(calls) == 1000  # 100 mini-batches, a handful of calls
    calls.clear()
    monkeypatch.setattr(groups, "GROUP_ROWS", 1)
    alone = run_batch(make_run(store.tracking_uri, f"models:/{MODEL}/1", tmp_path / "in.csv", tmp_path / "alone",
                               mini_batch_size=10))
    assert calls == [10] * 100
    assert (tmp_path / "grouped" / "predictions.csv").read_bytes() == \
        (tmp_path / "alone" / "predictions.csv").read_bytes()
    assert alone.batches == 100


def test_a_group_that_fails_is_scored_one_mini_batch_at_a_time(store: IrisStore, tmp_path: Path) -> None:
    data = iris_frame(store, 100)
    data.iloc[37, 0] = None  # a missing value: the model refuses the mini-batch holding row 37
    write(data, tmp_path / "in.csv")
    lines: list[str] = []
    run = make_run(store.tracking_uri, f"models:/{MODEL}/1", tmp_path / "in.csv", tmp_path / "out",
                   mini_batch_size=10, error_threshold=10)
    result = run_batch(run, lines.append)
    assert (result.status, result.rows_scored, result.rows_failed) == ("succeeded", 90, 10), result.error
    assert [(f.first_row, f.rows) for f in result.failures] == [(30, 10)]
    assert "NaN" in result.failures[0].error
    assert any("scoring 10 mini-batches in one call failed" in line and "one by one" in line for line in lines)
    rows = read(tmp_path / "out" / "predictions.csv")
    kept = [i for i in range(100) if not 30 <= i < 40]
    assert [int(r["row"]) for r in rows] == kept
    expected = store.expected(data.iloc[kept][list(store.features.columns)])
    assert [int(r["prediction"]) for r in rows] == expected


def test_per_file_writes_one_file_per_input_and_drops_stale_ones(store: IrisStore, tmp_path: Path) -> None:
    data = iris_frame(store, 200)
    inputs = tmp_path / "in"
    write(data.iloc[:70], inputs / "a.csv")
    write(data.iloc[70:], inputs / "sub" / "b.parquet")
    write(data.iloc[:5], inputs / "old.csv")
    out = tmp_path / "out"
    run = make_run(store.tracking_uri, f"models:/{MODEL}/1", inputs, out, mode="per_file", max_concurrency=2)
    assert run_batch(run).status == "succeeded"
    assert (out / "old.csv").exists()
    (inputs / "old.csv").unlink()
    result = run_batch(run)
    assert result.status == "succeeded", result.error
    assert sorted(Path(p).relative_to(out).as_posix() for p in result.outputs) == ["a.csv", "sub/b.csv"]
    assert not (out / "old.csv").exists()  # written by the earlier run for an input that is gone
    second = read(out / "sub" / "b.csv")
    assert len(second) == 130 and {r["source"] for r in second} == {"sub/b.parquet"}
    assert [int(r["prediction"]) for r in second] == store.expected(data.iloc[70:][list(store.features.columns)])


def test_vector_outputs_become_numbered_columns() -> None:
    from mlspec.runtime.batch.predict import PredictionError, prediction_columns

    columns = prediction_columns(np.arange(6.0).reshape(3, 2), 3)
    assert list(columns) == ["prediction_0", "prediction_1"]
    assert list(prediction_columns(pd.Series([1, 2]), 2)) == ["prediction"]
    with pytest.raises(PredictionError, match=r"2 values .* for 3 rows"):
        prediction_columns(np.arange(2), 3)


def test_failed_rows_within_the_threshold_are_left_out_and_listed(flaky: str, store: IrisStore,
                                                                  tmp_path: Path) -> None:
    values = [float(i) for i in range(100)]
    values[10] = -1.0  # fails mini-batch 0..31
    values[70] = -1.0  # fails mini-batch 64..95
    write(numbers_frame(values), tmp_path / "in.csv")
    run = make_run(store.tracking_uri, flaky, tmp_path / "in.csv", tmp_path / "out", mini_batch_size=32,
                   error_threshold=64, max_retries=1)
    result = run_batch(run)
    assert result.status == "succeeded", result.error
    assert (result.rows_scored, result.rows_failed) == (36, 64)
    assert [(f.first_row, f.rows) for f in result.failures] == [(0, 32), (64, 32)]
    assert "negative x at id 10" in result.failures[0].error and "after 2 attempts" in result.failures[0].error
    rows = read(tmp_path / "out" / "predictions.csv")
    assert [int(r["row"]) for r in rows] == list(range(32, 64)) + list(range(96, 100))
    assert [float(r["prediction"]) for r in rows] == [2 * v for v in list(range(32, 64)) + list(range(96, 100))]


def test_more_failed_rows_than_the_threshold_fail_the_run(flaky: str, store: IrisStore, tmp_path: Path) -> None:
    values = [-1.0 if i in (5, 40) else float(i) for i in range(100)]
    write(numbers_frame(values), tmp_path / "in.csv")
    run = make_run(store.tracking_uri, flaky, tmp_path / "in.csv", tmp_path / "out", mini_batch_size=32,
                   error_threshold=40)
    result = run_batch(run)
    assert result.status == "failed"
    assert "64 row(s) failed, more than error_threshold 40" in (result.error or "")
    assert "in.csv rows 0-31" in (result.error or "")
    assert not (tmp_path / "out" / "predictions.csv").exists()


def test_minus_one_tolerates_any_failure(flaky: str, store: IrisStore, tmp_path: Path) -> None:
    write(numbers_frame([-1.0] * 10), tmp_path / "in.csv")
    result = run_batch(make_run(store.tracking_uri, flaky, tmp_path / "in.csv", tmp_path / "out"))
    assert (result.status, result.rows_failed, result.rows_scored) == ("succeeded", 10, 0)


def test_retries_recover_a_mini_batch_that_fails_once(flaky: str, store: IrisStore, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    write(numbers_frame([float(i) for i in range(50)]), tmp_path / "in.csv")
    monkeypatch.setenv("BATCH_FLAKY_DIR", str(tmp_path))
    lines: list[str] = []
    once = make_run(store.tracking_uri, flaky, tmp_path / "in.csv", tmp_path / "out", mini_batch_size=10,
                    max_retries=1, max_concurrency=2)
    result = run_batch(once, lines.append)
    assert (result.status, result.rows_scored, result.rows_failed) == ("succeeded", 50, 0)
    assert sum("attempt 1 failed (RuntimeError: first attempt fails); retrying" in line for line in lines) == 5
    for marker in tmp_path.glob("seen-*"):
        marker.unlink()
    never = once.model_copy(update={"max_retries": 0, "output": str(tmp_path / "out2")})
    assert run_batch(never).rows_failed == 50


def test_a_stuck_mini_batch_times_out_and_the_rest_is_scored(flaky: str, store: IrisStore, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_STUCK_S", "3")
    values = [float(i) for i in range(40)]
    values[3] = 999.0
    write(numbers_frame(values), tmp_path / "in.csv")
    run = make_run(store.tracking_uri, flaky, tmp_path / "in.csv", tmp_path / "out", mini_batch_size=10,
                   timeout=0.5, max_retries=1)
    result = run_batch(run)
    assert (result.status, result.rows_scored, result.rows_failed) == ("succeeded", 30, 10)
    assert "timed out after 0.5s (after 2 attempts)" in result.failures[0].error
    assert result.duration_s < 2.5  # the stuck calls were abandoned, not waited for


def test_a_tampered_model_is_refused_before_loading(store: IrisStore, tmp_path: Path) -> None:
    from mlspec.runtime.serving.integrity import model_digest

    folder = copy_model(store, "batch-tampered")
    version = register(store.tracking_uri, folder, None, {"mlspec.sha256": model_digest(folder)})
    pickled = folder / "model.pkl"
    data = bytearray(pickled.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pickled.write_bytes(bytes(data))
    write(iris_frame(store, 10), tmp_path / "in.csv")
    result = run_batch(make_run(store.tracking_uri, f"models:/{MODEL}/{version}", tmp_path / "in.csv",
                                tmp_path / "out"))
    assert result.status == "failed" and "does not match" in (result.error or "")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_user_errors_are_messages(store: IrisStore, tmp_path: Path) -> None:
    write(iris_frame(store, 10).drop(columns=["petal width (cm)"]), tmp_path / "in.csv")
    result = run_batch(make_run(store.tracking_uri, f"models:/{MODEL}/1", tmp_path / "in.csv", tmp_path / "out"))
    assert result.status == "failed" and "no column 'petal width (cm)'" in (result.error or "")
    missing = run_batch(make_run(store.tracking_uri, f"models:/{MODEL}/1", tmp_path / "nothing", tmp_path / "o"))
    assert "does not exist" in (missing.error or "")
    unknown = run_batch(make_run(store.tracking_uri, "models:/no-such-model/1", tmp_path / "in.csv", tmp_path / "o"))
    assert unknown.status == "failed" and "no-such-model" in (unknown.error or "")

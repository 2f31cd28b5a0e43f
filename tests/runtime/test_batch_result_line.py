"""The scorer's result as one line of its output: what a Docker deployment reads back from a container's logs."""

from __future__ import annotations

from mlspec.runtime.batch.contract import BatchResult, FailedBatch, result_from_logs, result_line


def test_the_last_result_line_in_the_logs_is_the_result() -> None:
    earlier = BatchResult(status="failed", endpoint="nightly", model_uri="models:/clf/1", error="killed")
    result = BatchResult(status="succeeded", endpoint="nightly", model_uri="models:/clf/2", rows_scored=150,
                         rows_failed=3, resumed_batches=5, outputs=["/mlspec/batch/nightly/h/scores/predictions.csv"],
                         failures=[FailedBatch(source="iris.csv", first_row=10, rows=3, error="bad value")])
    logs = "\n".join(["[nightly] loaded", result_line(earlier), "[nightly] resuming", result_line(result), "done"])
    found = result_from_logs(logs)
    assert found is not None
    assert (found.status, found.rows_scored, found.rows_failed, found.resumed_batches, found.outputs) == (
        "succeeded", 150, 3, 5, result.outputs)
    assert found.failures == []  # the details stay in the result file: one line must stay short
    assert "\n" not in result_line(result)


def test_logs_without_a_valid_result_line_have_no_result() -> None:
    assert result_from_logs("") is None
    assert result_from_logs("Traceback (most recent call last):\n  MemoryError") is None
    assert result_from_logs("mlspec-batch-result: {not json") is None

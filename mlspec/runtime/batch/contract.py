"""The BatchRun contract: one batch scoring run as the engine writes it in JSON, and the result it reads back."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from mlspec.runtime.contract import ContractFile
from mlspec.runtime.jobrun import AbsPath


class BatchRunError(Exception):
    """A problem the user can fix (unreadable input, unknown format, missing column): a message, not a traceback."""


class BatchRun(ContractFile):
    """What the engine hands the batch scorer: one endpoint's run, resolved to absolute paths and a model URI."""

    noun: ClassVar[str] = "batch run"
    error: ClassVar[type[Exception]] = BatchRunError

    endpoint: str = Field(description="The batch endpoint's name, for progress lines.")
    model_uri: str = Field(description="models:/NAME/VERSION (or an MLflow model folder).")
    tracking_uri: str | None = Field(None, description="MLflow tracking and registry URI.")
    sha256: str | None = Field(None, description="Expected model digest (default: the version's mlspec.sha256 tag).")
    input: AbsPath = Field(description="Absolute file, or folder of .csv / .parquet / .jsonl files, to score.")
    output: AbsPath = Field(description="Absolute folder the predictions are written to.")
    mode: Literal["append", "per_file"] = Field("append", description="predictions.csv, or one CSV per input file.")
    mini_batch_size: int = Field(1024, ge=1, description="Rows per mini-batch: the unit of retries, failures and "
                                 "resumption (a batchable model scores several in one call).")
    error_threshold: int = Field(-1, ge=-1, description="Failed rows tolerated before the run fails (-1: any).")
    max_retries: int = Field(3, ge=0, description="Attempts per mini-batch after the first.")
    timeout: float = Field(30.0, gt=0, description="Seconds one attempt at a mini-batch may take.")
    max_concurrency: int = Field(1, ge=1, description="Mini-batches scored at once per node.")
    nodes: int = Field(1, ge=1, description="Nodes of the compute; locally each adds max_concurrency workers.")
    device: str = Field("auto", description="torch models: auto, cpu or cuda:N.")
    code: AbsPath | None = Field(None, description="A scoring script's folder (first on its import path).")
    scoring_script: str | None = Field(None, description="Score through this script's init() and run(mini_batch) "
                                       "(a path inside `code`) instead of the model's predict.")

    def text(self) -> str:
        """The contract as JSON, without the scoring-script fields of a run that has none."""
        unused = {name for name in ("code", "scoring_script") if getattr(self, name) is None}
        return self.model_dump_json(indent=2, exclude=unused) + "\n"

    @property
    def workers(self) -> int:
        return self.max_concurrency * self.nodes


class FailedBatch(BaseModel):
    """A mini-batch that still failed after its retries: its rows are absent from the predictions."""

    source: str
    first_row: int
    rows: int
    error: str


class BatchResult(BaseModel):
    """What a batch run came to: the result JSON the engine reads back."""

    status: Literal["succeeded", "failed", "cancelled"]
    endpoint: str
    model_uri: str
    model_version: str | None = None
    model_sha256: str | None = None
    outputs: list[str] = Field(default_factory=list, description="Absolute paths of the prediction files.")
    rows_scored: int = 0
    rows_failed: int = 0
    batches: int = 0
    resumed_batches: int = Field(0, description="Mini-batches an earlier, interrupted run had already done.")
    failures: list[FailedBatch] = Field(default_factory=list, description="The first failed mini-batches.")
    duration_s: float = 0.0
    scoring_s: float = Field(0.0, description="Of the duration, the time spent reading, scoring and writing.")
    error: str | None = Field(None, description="Why it failed, in words; None when it succeeded.")


RESULT_PREFIX = "mlspec-batch-result: "  # a container's logs are all a Docker deployment reads back


def result_line(result: BatchResult) -> str:
    """The result as one line of the scorer's output (`--result-line`)."""
    return RESULT_PREFIX + result.model_dump_json(exclude={"failures"})


def result_from_logs(logs: str) -> BatchResult | None:
    """The result of the last result line in a scorer's output; None when it printed none."""
    for line in reversed(logs.splitlines()):
        _, found, text = line.partition(RESULT_PREFIX)
        if found:
            try:
                return BatchResult.model_validate_json(text)
            except ValueError:
                return None
    return None

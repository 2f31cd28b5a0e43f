"""Every candidate FLAML evaluates, read from its log as the search writes it, as an MLflow child run of the AutoML
job's run: learner, hyperparameters and the primary metric."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlspec.runtime import tracking
from mlspec.runtime.automl.metrics import value_from_loss
from mlspec.spec.automl_catalog import ALGORITHMS

LEARNER_TAG = "mlspec.automl.learner"  # FLAML's learner name
ALGORITHM_TAG = "mlspec.automl.algorithm"  # Azure ML's name of it
SEARCH_TAG = "mlspec.automl.search"  # which search process evaluated it
RECORD_TAG = "mlspec.automl.record"  # its record id in that search's log


def algorithm_name(learner: str) -> str:
    """Azure ML's name of a FLAML learner."""
    return next((name for name, a in ALGORITHMS.items() if learner in a.flaml.values()), learner)


@dataclass
class TrialLog:
    """One search's log file, read up to its last complete line; each new candidate becomes a child run."""

    path: Path
    search: int
    offset: int = 0
    best_record: int | None = None  # FLAML's closing checkpoint: the search's best record
    runs: dict[int, str] = field(default_factory=dict)  # record id -> child run id

    def new_records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        complete = chunk[:chunk.rfind(b"\n") + 1]  # a line still being written is read next time
        self.offset += len(complete)
        records = []
        for line in complete.decode().splitlines():
            record = json.loads(line) if line.strip() else {}
            if "curr_best_record_id" in record:
                self.best_record = int(record["curr_best_record_id"])
            elif "record_id" in record:
                records.append(record)
        return records


class ChildRuns:
    """Logs candidates as child runs of `parent` in one batch call each (the store is written from one thread)."""

    def __init__(self, uri: str, experiment_id: str, parent: str, metric: str, tags: dict[str, str],
                 target_range: float = 1.0) -> None:
        self.uri, self.experiment_id, self.parent, self.metric = uri, experiment_id, parent, metric
        self.tags, self.target_range = tags, target_range
        self.count = 0

    def log(self, log: TrialLog, record: dict[str, Any]) -> str:
        from mlflow.entities import Metric, Param

        client = tracking.client(self.uri)
        learner = str(record.get("learner"))
        record_id = int(record["record_id"])
        tags = {**self.tags, "mlflow.parentRunId": self.parent, LEARNER_TAG: learner,
                ALGORITHM_TAG: algorithm_name(learner), SEARCH_TAG: str(log.search), RECORD_TAG: str(record_id)}
        run = client.create_run(self.experiment_id, tags=tags, run_name=f"{algorithm_name(learner)}-{log.search}-"
                                f"{record_id}")
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        params = [Param("learner", learner), Param("algorithm", algorithm_name(learner))]
        params += [Param(str(k), str(v)[:6000]) for k, v in (record.get("config") or {}).items()]
        values = {"trial_time_s": record.get("trial_time"), "wall_clock_time_s": record.get("wall_clock_time"),
                  "sample_size": record.get("sample_size")}
        loss = record.get("validation_loss")
        if isinstance(loss, int | float) and math.isfinite(loss):
            values[self.metric] = value_from_loss(self.metric, float(loss), self.target_range)
        metrics = [Metric(k, float(v), now, 0) for k, v in values.items()
                   if isinstance(v, int | float) and math.isfinite(v)]
        client.log_batch(run_id, metrics=metrics, params=params)
        client.set_terminated(run_id, "FINISHED" if self.metric in values else "FAILED")
        log.runs[record_id] = run_id
        self.count += 1
        return run_id

    def drain(self, logs: list[TrialLog]) -> int:
        """Log every candidate written since the last call; how many."""
        logged = 0
        for log in logs:
            for record in log.new_records():
                self.log(log, record)
                logged += 1
        return logged

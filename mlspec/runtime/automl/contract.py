"""What the engine hands an AutoML run, and what the run hands each of its search processes."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field

from mlspec.runtime.contract import ContractFile
from mlspec.runtime.jobrun import AbsPath, JobRunError, OutputBinding
from mlspec.spec.automl import AutoMLJob
from mlspec.spec.automl_catalog import Task
from mlspec.spec.base import Strict

TRIALS_FILE = "trials.jsonl"  # FLAML's log of every candidate, one JSON line each
BEST_FILE = "best.json"  # the search's best candidate
MODEL_FILE = "model.joblib"  # that candidate's pipeline, refitted on the whole table


class Search(Strict):
    """One search process: FLAML over its share of the learners, within the whole time budget."""

    task: Task
    data: AbsPath
    target: str
    metric: str = Field(description="Azure ML's name of the primary metric.")
    learners: list[str] = Field(min_length=1, description="FLAML's learner names.")
    deadline: float = Field(description="When the search must end (seconds since the epoch): the budget counts "
                            "from the job's start, so a process's own start-up is not added to it.")
    reserve_s: float = Field(0.0, ge=0, description="Kept back from the budget for refitting the best pipeline.")
    trial_time_s: float | None = None
    max_iter: int = Field(ge=1)
    n_splits: int | None = Field(None, description="k of k-fold cross validation; None: FLAML chooses.")
    seed: int = 0
    n_jobs: int = Field(1, ge=1, description="Cores each candidate's training may use.")
    folder: AbsPath


class AutoMLRun(ContractFile):
    """An AutoML job, resolved: where to track, what to search, and the model output to register."""

    noun: ClassVar[str] = "AutoML run"
    error: ClassVar[type[Exception]] = JobRunError

    job: str
    experiment: str
    tracking_uri: str
    artifact_location: str
    workdir: AbsPath
    content_hash: str
    tags: dict[str, str] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict, description="Extra variables of every search process.")
    task: Task
    data: AbsPath
    target: str
    metric: str
    algorithms: list[str] = Field(min_length=1, description="Azure ML's names of the algorithms searched.")
    timeout_s: float = Field(gt=0)
    trial_timeout_s: float | None = None
    max_trials: int = Field(ge=1)
    concurrency: int = Field(1, ge=1)
    n_splits: int | None = None
    seed: int = 0
    cpus: int = Field(1, ge=1, description="Cores of each node of the compute.")
    outputs: dict[str, OutputBinding] = Field(default_factory=dict)


def automl_seed(content_hash: str) -> int:
    """Searches are seeded by the content hash: the same job searches the same way, a changed one otherwise."""
    return int(content_hash[:8], 16) % (2**31)


def search_settings(job: AutoMLJob, algorithms: list[str], content_hash: str) -> dict[str, Any]:
    """The AutoMLRun fields an AutoML job's spec decides (`algorithms`: its searched ones, allowed less blocked)."""
    limits = job.limits
    return {"task": job.task, "target": job.target_column_name, "metric": job.metric, "algorithms": algorithms,
            "timeout_s": limits.timeout_minutes * 60,
            "trial_timeout_s": limits.trial_timeout_minutes * 60 if limits.trial_timeout_minutes else None,
            "max_trials": limits.max_trials, "concurrency": limits.max_concurrent_trials,
            "n_splits": job.n_cross_validations, "seed": automl_seed(content_hash)}


def settings_text(settings: dict[str, Any]) -> str:
    """What a compiled program carries of an AutoML job (its search settings, and where its table is) as compact
    JSON with sorted keys: stable text for a program or a manifest."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


def search_deadline(timeout_s: float) -> float:
    """How long the searches may run before they are stopped: FLAML keeps to the budget, a learner that overruns it
    is stopped well after (the runner's limit on each search process)."""
    return timeout_s + max(30.0, 0.25 * timeout_s)

"""What the engine hands an AutoML run, and what the run hands each of its search processes."""

from __future__ import annotations

from pydantic import Field

from mlspec.runtime.jobrun import AbsPath, OutputBinding
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


class AutoMLRun(Strict):
    """An AutoML job, resolved: where to track, what to search, and the model output to register."""

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

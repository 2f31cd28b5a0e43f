"""The AutoML job: FLAML searches learners and hyperparameters for a table's target column; the best pipeline is
registered as a model."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mlspec.spec.automl_catalog import DEFAULT_METRICS, Task
from mlspec.spec.base import Name, Resource, Strict
from mlspec.spec.job import Output
from mlspec.spec.schedule import Schedule
from mlspec.spec.sweep import JOB_MODELS, AnyJob

DATA_REFERENCE = r"^data:[a-z0-9][a-z0-9_-]{0,62}$"


class AutoMLLimits(Strict):
    timeout_minutes: float = Field(360, gt=0, le=60 * 24 * 7, description="The whole search's time budget: the best "
                                   "pipeline found by then is registered (Azure ML's default: 360).")
    trial_timeout_minutes: float | None = Field(None, gt=0, description="Each candidate's training time limit "
                                                "(FLAML's train_time_limit).")
    max_trials: int = Field(1000, ge=1, le=100000, description="Candidates to try in all (shared among the "
                            "concurrent searches).")
    max_concurrent_trials: int = Field(1, ge=1, description="Searches run at once, each a process with its share of "
                                       "the algorithms; at most the compute's max_nodes.")

    @model_validator(mode="after")
    def _trial_within_budget(self) -> AutoMLLimits:
        if self.trial_timeout_minutes is not None and self.trial_timeout_minutes > self.timeout_minutes:
            raise ValueError(f"trial_timeout_minutes ({self.trial_timeout_minutes:g}) is longer than "
                             f"timeout_minutes ({self.timeout_minutes:g}); a trial cannot outlast the search")
        return self


class AutoMLTraining(Strict):
    allowed_training_algorithms: list[str] | None = Field(
        None, min_length=1, description="Search only these (Azure ML names: LogisticRegression, LightGBM, "
        "RandomForest, ExtremeRandomTrees, KNN, SGD, LinearSVM, GradientBoosting, ElasticNet, LassoLars).")
    blocked_training_algorithms: list[str] = Field(default_factory=list, description="Never search these.")


class AutoMLJob(Resource):
    """A tabular AutoML job: classification or regression of `target_column_name` in `training_data`."""

    kind: Literal["Job"] = "Job"
    type: Literal["automl"] = Field(description="'automl': search learners and hyperparameters with FLAML.")
    task: Task = Field(description="classification or regression.")
    training_data: str = Field(json_schema_extra={"pattern": DATA_REFERENCE}, description="'data:NAME': a Data "
                               "resource holding one CSV or Parquet file, a header row naming the columns.")
    target_column_name: str = Field(min_length=1, description="The column to predict; every other column is a "
                                    "feature.")
    primary_metric: str | None = Field(None, description="Azure ML's metric to optimise (default: accuracy for "
                                       "classification, normalized_root_mean_squared_error for regression).")
    limits: AutoMLLimits = Field(default_factory=AutoMLLimits, description="Time and trial budgets, concurrency.")
    training: AutoMLTraining = Field(default_factory=AutoMLTraining, description="Which algorithms to search.")
    n_cross_validations: int | None = Field(None, ge=2, le=20, description="Score each candidate by k-fold cross "
                                            "validation; left out: FLAML chooses (cross validation on small "
                                            "tables, a holdout on large ones).")
    compute: Name | None = Field(None, description="Compute to run on (default: the workspace default).")
    outputs: dict[str, Output] = Field(default_factory=dict, description="At most one output, of type model: "
                                       "register_as registers the best pipeline (sklearn flavor).")
    experiment_name: str | None = Field(None, description="MLflow experiment (default: the workspace name).")
    schedule: Schedule | None = Field(None, description="Search again on a timetable, on the rows training_data's "
                                      "source holds then, besides when the job changes.")

    @field_validator("training_data")
    @classmethod
    def _data_reference(cls, value: str) -> str:
        if not re.match(DATA_REFERENCE, value):
            raise ValueError(f"'{value}' is not a Data reference: write data:NAME, naming a Data resource")
        return value

    @field_validator("outputs")
    @classmethod
    def _one_model_output(cls, outputs: dict[str, Output]) -> dict[str, Output]:
        if len(outputs) > 1:
            raise ValueError("an AutoML job writes one output, the best model: declare one")
        for output in outputs.values():
            if output.type != "model":
                raise ValueError("an AutoML job's output is the best model: set type: model")
            if output.flavor not in (None, "sklearn"):
                raise ValueError(f"the best pipeline is a scikit-learn model: flavor {output.flavor} cannot load it "
                                 "(leave flavor out, or write sklearn)")
        return outputs

    @property
    def metric(self) -> str:
        return self.primary_metric or DEFAULT_METRICS[self.task]

    @property
    def data_name(self) -> str:
        return self.training_data.split(":", 1)[1]


MODEL_JOBS = (*JOB_MODELS, AutoMLJob)  # every job kind whose outputs register models
ModelJob = AnyJob | AutoMLJob

"""The sweep job: a trial command run many times over a search space, the best trial's model registered."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mlspec.spec.base import Name, Resource, Seconds, Strict
from mlspec.spec.job import InputValue, Job, Output
from mlspec.spec.schedule import Schedule

# An MLflow metric key, as the trial's command logs it with mlflow.log_metric.
METRIC_KEY = r"^[A-Za-z0-9_.\-/ ]{1,250}$"
ChoiceValue = bool | int | float | str


class Choice(Strict):
    """One of the listed values."""

    type: Literal["choice"]
    values: list[ChoiceValue] = Field(min_length=1, description="The values to choose from.")

    @model_validator(mode="after")
    def _distinct(self) -> Choice:
        seen = [repr(v) for v in self.values]
        if len(set(seen)) != len(seen):
            raise ValueError("values are listed more than once; list each value once")
        return self


class Uniform(Strict):
    """A number drawn uniformly between min_value and max_value."""

    type: Literal["uniform"]
    min_value: float = Field(description="The lowest value.")
    max_value: float = Field(description="The highest value.")

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if not self.min_value < self.max_value:
            raise ValueError(f"min_value ({self.min_value:g}) must be less than max_value ({self.max_value:g})")
        return self


class LogUniform(Strict):
    """exp(uniform(min_value, max_value)), as Azure ML defines it: the bounds are natural logarithms, so
    min_value: -7, max_value: 0 draws between about 0.0009 and 1, every order of magnitude as likely."""

    type: Literal["loguniform"]
    min_value: float = Field(description="Natural log of the lowest value.")
    max_value: float = Field(description="Natural log of the highest value.")

    @model_validator(mode="after")
    def _ordered(self) -> LogUniform:
        if not self.min_value < self.max_value:
            raise ValueError(f"min_value ({self.min_value:g}) must be less than max_value ({self.max_value:g})")
        if max(abs(self.min_value), abs(self.max_value)) > 700:
            raise ValueError("the bounds are natural logarithms: exp() of a value beyond ±700 overflows")
        return self

    @property
    def low(self) -> float:
        return math.exp(self.min_value)

    @property
    def high(self) -> float:
        return math.exp(self.max_value)


class RandInt(Strict):
    """An integer from 0 to upper - 1."""

    type: Literal["randint"]
    upper: int = Field(ge=1, description="One more than the highest integer drawn.")


class Normal(Strict):
    """A number drawn from a normal distribution of mean mu and standard deviation sigma."""

    type: Literal["normal"]
    mu: float = Field(description="The mean.")
    sigma: float = Field(gt=0, description="The standard deviation.")


Dimension = Annotated[Choice | Uniform | LogUniform | RandInt | Normal, Field(discriminator="type")]


class Trial(Strict):
    """What each trial runs: a command job's command, code and environment."""

    command: str = Field(description="Shell command; use ${{search_space.NAME}}, ${{inputs.NAME}} and "
                                     "${{outputs.NAME}}. It logs the objective's metric with mlflow.log_metric.")
    code: str | None = Field(None, description="Folder snapshotted once and used as each trial's working directory.")
    environment: Name | None = Field(None, description="Environment to run in (default: the workspace default).")
    environment_variables: dict[str, str] = Field(default_factory=dict, description="Extra variables for the command.")


class Objective(Strict):
    primary_metric: str = Field(pattern=METRIC_KEY, description="The metric each trial logs with mlflow.log_metric; "
                                "its last value is the trial's score.")
    goal: Literal["maximize", "minimize"] = Field(description="Whether a higher or a lower value is better.")


class SweepLimits(Strict):
    max_total_trials: int = Field(ge=1, le=10000, description="Trials to run in all (a grid runs at most its size).")
    max_concurrent_trials: int = Field(1, ge=1, description="Trials run at once, each a process; at most the "
                                       "compute's max_nodes.")
    trial_timeout: Seconds | None = Field(None, gt=0, description="Stop a trial after this long (it counts as "
                                          "failed), e.g. '10m'.")
    timeout: Seconds | None = Field(None, gt=0, description="Stop the whole sweep after this long: running trials "
                                    "are stopped and the best finished trial's model is registered.")


class EarlyTermination(Strict):
    """Stops trials whose intermediate metric (logged with step=) is poor, at evaluation steps."""

    policy: Literal["median_stopping", "bandit", "truncation"] = Field(
        description="median_stopping: stop a trial whose best value so far is worse than the median of the other "
        "trials' running averages at that step; bandit: stop a trial not within slack_factor of the best trial at "
        "that step; truncation: stop a trial among the worst truncation_percentage percent at that step.")
    evaluation_interval: int = Field(1, ge=1, description="Apply the policy at steps that are multiples of this.")
    delay_evaluation: int = Field(0, ge=0, description="Apply it from this step on.")
    slack_factor: float | None = Field(None, gt=0, validate_default=True,
                                       description="bandit: the allowed ratio to the best value.")
    truncation_percentage: int | None = Field(None, ge=1, le=99, validate_default=True,
                                              description="truncation: the share of trials stopped at each evaluation.")

    @field_validator("slack_factor")
    @classmethod
    def _bandit_slack(cls, value: float | None, info: ValidationInfo) -> float | None:
        policy = info.data.get("policy")
        if policy == "bandit" and value is None:
            raise ValueError("the bandit policy needs slack_factor (e.g. 0.1: within 10% of the best trial)")
        if policy not in (None, "bandit") and value is not None:
            raise ValueError(f"slack_factor is a setting of the bandit policy, not of {policy}")
        return value

    @field_validator("truncation_percentage")
    @classmethod
    def _truncation_share(cls, value: int | None, info: ValidationInfo) -> int | None:
        policy = info.data.get("policy")
        if policy == "truncation" and value is None:
            raise ValueError("the truncation policy needs truncation_percentage (e.g. 20)")
        if policy not in (None, "truncation") and value is not None:
            raise ValueError(f"truncation_percentage is a setting of the truncation policy, not of {policy}")
        return value


class SweepJob(Resource):
    """A sweep: runs `trial` with parameters drawn from `search_space`, registers the best trial's model outputs."""

    kind: Literal["Job"] = "Job"
    type: Literal["sweep"] = Field(description="'sweep': hyperparameter tuning over a search space.")
    trial: Trial = Field(description="The command each trial runs, its code and environment.")
    compute: Name | None = Field(None, description="Compute to run on (default: the workspace default).")
    inputs: dict[str, InputValue] = Field(
        default_factory=dict, description="Literals, 'data:NAME' references, or {type, path} inputs, the same for "
        "every trial.")
    outputs: dict[str, Output] = Field(default_factory=dict, description="Folders each trial writes; register_as "
                                       "registers the best trial's.")
    search_space: dict[Annotated[str, Field(pattern=r"^[A-Za-z_]\w*$")], Dimension] = Field(
        min_length=1, description="Parameter name -> distribution (choice, uniform, loguniform, randint, normal).")
    sampling_algorithm: Literal["grid", "random", "bayesian"] = Field(
        "random", description="grid: every combination of choice values; random; bayesian: Optuna's TPE.")
    objective: Objective = Field(description="The metric to optimise and its direction.")
    limits: SweepLimits = Field(description="How many trials, how many at once, and time limits.")
    early_termination: EarlyTermination | None = Field(None, description="Stop poor trials early.")
    experiment_name: str | None = Field(None, description="MLflow experiment (default: the workspace name).")
    schedule: Schedule | None = Field(None, description="Sweep again on a timetable, besides when the job changes.")

    @field_validator("sampling_algorithm")
    @classmethod
    def _grid_only_over_choices(cls, value: str, info: ValidationInfo) -> str:
        space = info.data.get("search_space") or {}
        other = [name for name, dim in space.items() if not isinstance(dim, Choice)]
        if value == "grid" and other:
            raise ValueError(f"grid sampling needs every parameter to be a choice; {', '.join(other)} "
                             f"{'is' if len(other) == 1 else 'are'} not (use random or bayesian sampling)")
        return value

    def grid_size(self) -> int:
        size = 1
        for dim in self.search_space.values():
            size *= len(dim.values) if isinstance(dim, Choice) else 0
        return size


AnyJob = Job | SweepJob
JOB_MODELS = (Job, SweepJob)


def command_field(job: AnyJob) -> tuple[str, str]:
    """A job's command and the field path it is written at: a sweep's is its trial's."""
    return (job.trial.command, "trial.command") if isinstance(job, SweepJob) else (job.command, "command")


def trial_field(job: AnyJob, name: str) -> str:
    """Where a command job's `code`, `environment` or `environment_variables` lives in this job: a sweep's trial."""
    return f"trial.{name}" if isinstance(job, SweepJob) else name

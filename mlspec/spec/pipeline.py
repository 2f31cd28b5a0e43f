"""The pipeline job: steps (command or sweep jobs) whose inputs bind to other steps' outputs, run as a DAG."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag

from mlspec.spec.base import NAME_PATTERN, Name, Resource, Seconds, Strict
from mlspec.spec.job import Output
from mlspec.spec.schedule import Schedule
from mlspec.spec.sweep import Dimension, EarlyTermination, Objective, SweepLimits, Trial

# ${{parent.jobs.STEP.outputs.NAME}} and ${{parent.inputs.NAME}}: Azure ML's pipeline binding syntax.
_STEP = NAME_PATTERN.strip("^$")
BINDING = re.compile(r"^\$\{\{\s*parent\.(?:jobs\.(?P<step>" + _STEP + r")\.outputs\.(?P<output>[A-Za-z_]\w*)"
                     r"|(?P<scope>inputs|outputs)\.(?P<name>[A-Za-z_]\w*))\s*\}\}$")
StepName = Annotated[str, Field(pattern=NAME_PATTERN)]


@dataclass(frozen=True, slots=True)
class Binding:
    """What a `${{parent...}}` value names: a step's output, or one of the pipeline's inputs or outputs."""

    scope: Literal["step", "inputs", "outputs"]
    name: str  # the output (of `step`), input or output name
    step: str = ""


def parse_binding(text: object) -> Binding | None:
    """The binding a value holds, or None when it holds none (a malformed `${{parent` is reported by the resolver)."""
    if not isinstance(text, str):
        return None
    match = BINDING.match(text.strip())
    if match is None:
        return None
    if match.group("step"):
        return Binding("step", match.group("output"), match.group("step"))
    return Binding(match.group("scope"), match.group("name"))  # type: ignore[arg-type]


def is_binding_like(text: object) -> bool:
    return isinstance(text, str) and text.strip().startswith("${{") and "parent" in text


class StepInput(Strict):
    """A typed input: a path, or a binding to another step's output or the pipeline's input, checked for its type."""

    type: Literal["uri_file", "uri_folder", "model"] = Field(description="What the step expects: a file, a folder "
                                                             "or a model folder.")
    path: str = Field(description="${{parent.jobs.STEP.outputs.NAME}}, ${{parent.inputs.NAME}}, or a path relative "
                                  "to the spec file.")


StepInputValue = bool | int | float | str | StepInput


class CommandStep(Strict):
    """A step that runs a command, like a command job."""

    type: Literal["command"] = Field("command", description="'command' (the default) or 'sweep'.")
    command: str = Field(description="Shell command; use ${{inputs.NAME}} and ${{outputs.NAME}}.")
    code: str | None = Field(None, description="Folder snapshotted and used as the working directory; its files are "
                                               "part of this step's content hash alone.")
    environment: Name | None = Field(None, description="Environment to run in (default: the workspace default).")
    compute: Name | None = Field(None, description="Compute to run on (default: settings.default_compute).")
    inputs: dict[str, StepInputValue] = Field(
        default_factory=dict, description="Literals, 'data:NAME' references, ${{parent.jobs.STEP.outputs.NAME}}, "
        "${{parent.inputs.NAME}}, or {type, path}.")
    outputs: dict[str, Output | str] = Field(default_factory=dict, description="Outputs the step writes, or "
                                             "${{parent.outputs.NAME}} to write one of the pipeline's outputs.")
    environment_variables: dict[str, str] = Field(default_factory=dict, description="Extra variables for the command.")
    timeout: Seconds | None = Field(None, description="Stop the step after this long, e.g. '30m'.")
    retries: int = Field(0, ge=0, le=10, description="Extra attempts after a failure.")


class SweepStep(Strict):
    """A step that tunes hyperparameters like a sweep job; its outputs are the best trial's."""

    type: Literal["sweep"] = Field(description="'sweep': hyperparameter tuning over a search space.")
    trial: Trial = Field(description="The command each trial runs, its code and environment.")
    compute: Name | None = Field(None, description="Compute to run on (default: settings.default_compute).")
    inputs: dict[str, StepInputValue] = Field(default_factory=dict, description="As a command step's, the same for "
                                              "every trial.")
    outputs: dict[str, Output | str] = Field(default_factory=dict, description="Outputs each trial writes; "
                                             "downstream steps read the best trial's.")
    search_space: dict[Annotated[str, Field(pattern=r"^[A-Za-z_]\w*$")], Dimension] = Field(
        min_length=1, description="Parameter name -> distribution (choice, uniform, loguniform, randint, normal).")
    sampling_algorithm: Literal["grid", "random", "bayesian"] = Field("random", description="grid, random or "
                                                                      "bayesian (Optuna's TPE).")
    objective: Objective = Field(description="The metric to optimise and its direction.")
    limits: SweepLimits = Field(description="How many trials, how many at once, and time limits.")
    early_termination: EarlyTermination | None = Field(None, description="Stop poor trials early.")


def _step_type(value: object) -> str:
    """A step's `type`; a step that gives none is a command step. The tags are no field names: an error's location
    holds the tag, and one named like a field (`command`) would point at that field."""
    found = value.get("type", "command") if isinstance(value, dict) else getattr(value, "type", "command")
    return "sweep step" if found == "sweep" else "command step"  # an unknown type: reported by `type`'s literal


Step = Annotated[Annotated[CommandStep, Tag("command step")] | Annotated[SweepStep, Tag("sweep step")],
                 Discriminator(_step_type)]


class PipelineSettings(Strict):
    default_compute: Name | None = Field(None, description="Compute of the steps that name none (default: the "
                                                           "workspace default).")
    continue_on_step_failure: bool = Field(False, description="false: a failed step stops the steps not yet "
                                           "started; true: steps that do not depend on it still run. Either way "
                                           "the pipeline fails.")


class PipelineJob(Resource):
    """A pipeline: steps run in dependency order, each reused while its content and inputs are unchanged."""

    kind: Literal["Job"] = "Job"
    type: Literal["pipeline"] = Field(description="'pipeline': steps bound to each other's outputs.")
    inputs: dict[str, bool | int | float | str | StepInput] = Field(
        default_factory=dict, description="Literals, 'data:NAME' references or {type, path}; steps read them as "
        "${{parent.inputs.NAME}}.")
    outputs: dict[str, Output] = Field(default_factory=dict, description="What the pipeline produces: a step writes "
                                       "each (its output set to ${{parent.outputs.NAME}}); register_as registers it.")
    jobs: dict[StepName, Step] = Field(min_length=1, description="The steps, by name.")
    settings: PipelineSettings = Field(default_factory=PipelineSettings, description="Default compute and failure "
                                       "handling.")
    experiment_name: str | None = Field(None, description="MLflow experiment of the pipeline's run and its steps' "
                                                          "child runs (default: the workspace name).")
    schedule: Schedule | None = Field(None, description="Run the steps again on a timetable, besides when the "
                                      "pipeline changes: steps reading a Data resource read its source afresh and "
                                      "run again, steps whose inputs are unchanged are reused.")


AnyStep = CommandStep | SweepStep


def step_command(step: AnyStep) -> tuple[str, str]:
    """A step's command and its field path within the step."""
    return (step.trial.command, "trial.command") if isinstance(step, SweepStep) else (step.command, "command")


def step_field(step: AnyStep, name: str) -> str:
    return f"trial.{name}" if isinstance(step, SweepStep) else name


def step_runs(step: AnyStep) -> CommandStep | Trial:
    """What holds the step's command, code, environment and variables."""
    return step.trial if isinstance(step, SweepStep) else step

"""The PipelineRun contract: what a pipeline runner is handed, by the local engine or in a container or a pod."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from mlspec.runtime.contract import ContractFile
from mlspec.runtime.jobrun import AbsPath, JobRun, JobRunError, OutputBinding
from mlspec.spec.base import Strict
from mlspec.spec.job import Output
from mlspec.spec.model import Model
from mlspec.spec.pipeline import SweepStep
from mlspec.spec.sweep import SweepJob

# Where a container or a pod keeps its pipelines' step results: the workspace volume (a volume of the pipeline's own
# on an attached Docker host) or the pipeline's claim is mounted there; <pipeline>/steps/<step>/<run hash>/ below.
CONTAINER_FOLDER = "/mlspec/pipelines"


class StepRun(Strict):
    """One step as the engine resolved it: a run template whose bound inputs and output places the runner fills in."""

    name: str = Field(description="The step's name in the pipeline.")
    template: JobRun = Field(description="Inputs read from other steps are missing; workdir and outputs are set per "
                                         "run hash.")
    static_hash: str = Field(description="The step's own content hash; the digests of what it reads are added.")
    deps: list[str] = Field(default_factory=list, description="Upstream steps whose outputs it reads.")
    reads: dict[str, tuple[str, str]] = Field(default_factory=dict, description="Input name -> (upstream step, its "
                                                                                 "output).")
    compute: str = Field(description="The compute whose nodes the step holds while it runs (its id).")
    sweep: SweepJob | None = Field(None, description="A sweep step: trials of the template, the best one's outputs "
                                                     "kept.")

    @property
    def slots(self) -> int:
        """How much of its compute the step holds: a sweep step one node per trial it runs at once."""
        return self.sweep.limits.max_concurrent_trials if self.sweep is not None else 1


class PipelineRun(ContractFile):
    """One pipeline: its steps in dependency order, where their results live and the MLflow run they report to."""

    noun: ClassVar[str] = "pipeline run"
    error: ClassVar[type[Exception]] = JobRunError

    name: str = Field(description="The pipeline's name.")
    content_hash: str = Field(description="The pipeline's content hash (mlspec.hash tag of its run).")
    steps: list[StepRun] = Field(min_length=1, description="The steps, in dependency order.")
    folder: AbsPath = Field(description="Persistent folder: steps/<step>/<run hash>/ below it, reused while a step's "
                                        "hash is unchanged, whichever pipeline run made it.")
    capacity: dict[str, int] = Field(default_factory=dict, description="Compute id -> steps it runs at once.")
    continue_on_step_failure: bool = False
    experiment: str = Field(description="MLflow experiment of the pipeline's run and its steps' child runs.")
    tracking_uri: str = Field(description="MLflow tracking and registry URI.")
    artifact_location: str = Field(description="Folder or URI of the experiment's artifacts.")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags on the pipeline's run.")

    def tracked_by(self, tracking_uri: str) -> PipelineRun:
        """The same run reporting to `tracking_uri`, every step with it: what a target knows only when it runs."""
        steps = [s.model_copy(update={"template": s.template.model_copy(update={"tracking_uri": tracking_uri})})
                 for s in self.steps]
        return self.model_copy(update={"tracking_uri": tracking_uri, "steps": steps})


def output_binding(output: Output, model: Model | None, path: str) -> OutputBinding:
    """A step's output as its run writes it: a Model document of the name it registers adds flavor, loader, aliases
    and signature, as for a command job."""
    entry: dict[str, Any] = {"path": path, "type": output.type, "register_as": output.register_as,
                             "flavor": output.flavor}
    if model is not None:
        entry.update(flavor=output.flavor or model.flavor, loader=model.loader, aliases=list(model.aliases),
                     signature=model.signature.model_dump() if model.signature else None)
    return OutputBinding.model_validate(entry)


def sweep_of_step(name: str, step: SweepStep, template: JobRun) -> SweepJob:
    """A sweep step as the sweep runner takes it: its trials run `template`, writing its outputs."""
    outputs = {n: Output(type=o.type) for n, o in template.outputs.items()}
    return SweepJob(name=name, type="sweep", trial=step.trial, outputs=outputs, search_space=step.search_space,
                    sampling_algorithm=step.sampling_algorithm, objective=step.objective, limits=step.limits,
                    early_termination=step.early_termination)

"""The SweepRun contract: what a sweep controller run apart from the engine (a container, a pod) is handed."""

from __future__ import annotations

import json
from typing import ClassVar

from pydantic import Field

from mlspec.runtime.contract import ContractFile
from mlspec.runtime.jobrun import AbsPath, JobRun, JobRunError
from mlspec.spec.sweep import SweepJob


class SweepRun(ContractFile):
    """One sweep: its spec, the template of its trials' runs and where its study and trials live."""

    noun: ClassVar[str] = "sweep run"
    error: ClassVar[type[Exception]] = JobRunError

    sweep: SweepJob = Field(description="The sweep as the spec declares it (search space, objective, limits...).")
    template: JobRun = Field(description="Each trial's run: its command still holds ${{search_space.*}}.")
    folder: AbsPath = Field(description="Persistent folder of the study (optuna.db) and the trials' outputs: a "
                                        "sweep run again on the same folder resumes.")
    seed: int = Field(ge=0, description="Seeds the sampler: the same sweep asks for the same parameters.")


# What a compiled program carries of a sweep: the settings the controller reads (the trial's command, code,
# inputs and outputs travel in its run contract, as a command job's do).
SETTINGS = ("search_space", "sampling_algorithm", "objective", "limits", "early_termination")


def sweep_settings(sweep: SweepJob) -> str:
    """The sweep's settings as compact JSON with sorted keys: stable text for a program or a manifest."""
    return json.dumps(sweep.model_dump(mode="json", include=set(SETTINGS), exclude_none=True), sort_keys=True,
                      separators=(",", ":"))


def sweep_of(name: str, command: str, settings: str) -> SweepJob:
    """The sweep back from `sweep_settings`, for the controller: its name and trial command beside them."""
    return SweepJob.model_validate({**json.loads(settings), "name": name, "type": "sweep",
                                    "trial": {"command": command}})


def sweep_seed(content_hash: str) -> int:
    """Sampling is seeded by the content hash: the same sweep asks for the same parameters, a changed one for
    others (as on the local engine)."""
    return int(content_hash[:8], 16)

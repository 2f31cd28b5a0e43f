"""`MlflowLabels`: a run-once container that puts the spec's tags and descriptions on what jobs made in MLflow."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_docker as docker

from mlspec.pulumi import containers as c
from mlspec.pulumi.job import TrainingJob
from mlspec.pulumi.registered_model import PathModel
from mlspec.pulumi.workspace import Workspace
from mlspec.runtime import envfiles
from mlspec.runtime.labels import LabelsRun

LABELS_FILE = f"{envfiles.DIRECTORY}/labels.json"
SIZE = c.Size(cpus=0.5, memory_mb=512)  # a few MLflow API calls


class LabellingFailed(Exception):
    """The labeller exited non-zero: the update stops with its output."""


@dataclass(frozen=True)
class MlflowLabelsArgs:
    """Labels applied in place to the workspace's MLflow (``mlspec.runtime.labels``), after the jobs ran.

    A job's labels are not part of its container, so changing them relabels its runs without training again:
    only this container, named by a digest of what it applies, runs again.

    :param experiments: experiment name -> ``{"tags": ..., "description": ...}`` (the workspace's labels).
    :param jobs: ``{"job", "content_hash", "tags", "description"}``: the labels of the job's runs at that hash.
    :param models: ``{"name", "content_hash", "tags", "description"}``: the registered model's labels, and its
        tags on the versions the job at ``content_hash`` registered.
    :param after: the jobs (and registrations from a path) whose runs and models are labelled (they run first).
    """

    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    after: list[TrainingJob | PathModel] = field(default_factory=list)


class MlflowLabels(pulumi.ComponentResource):
    """Runs ``python -m mlspec.runtime.labels`` on the runtime image against the tracking server, once per
    change of what it applies; the update fails if it cannot."""

    def __init__(self, name: str, workspace: Workspace, args: MlflowLabelsArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlspec:docker:MlflowLabels", name, None, workspace.options(opts))
        run = LabelsRun.model_validate({"tracking_uri": workspace.tracking_uri, "experiments": args.experiments,
                                        "jobs": args.jobs, "models": args.models})
        content = run.model_dump_json(indent=2) + "\n"
        digest = hashlib.sha256(content.encode()).hexdigest()[:12]
        self.container = docker.Container(
            name,
            name=f"{workspace.name}-{name}-{digest}",
            image=workspace.runtime.image_name,
            command=c.with_files(c.PYTHON, "-m", "mlspec.runtime.labels", LABELS_FILE),
            user=c.USER,
            envs=[c.files_variable({LABELS_FILE: content})],
            networks_advanced=c.network(workspace.network_name),
            must_run=False,
            attach=True,
            logs=True,
            restart="no",
            labels=c.labels(workspace.name, f"workspace/{workspace.name}", {"mlspec.role": "labels"}),
            **c.hardened(SIZE),
            opts=pulumi.ResourceOptions(parent=self,
                                        depends_on=[*workspace.tracking, *(job.container for job in args.after)]),
        )
        self.done = pulumi.Output.all(self.container.exit_code, self.container.container_logs).apply(
            lambda outcome: _check(outcome[0], outcome[1]))
        self.register_outputs({"done": self.done})


def _check(exit_code: int | None, logs: str | None) -> bool:
    if exit_code not in (None, 0):
        raise LabellingFailed(f"applying tags and descriptions to MLflow failed (exit code {exit_code}):\n"
                              + "\n".join(f"    {line}" for line in (logs or "").splitlines()[-10:]))
    return True

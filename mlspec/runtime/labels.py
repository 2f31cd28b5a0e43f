"""A resource's tags and description on what it made in MLflow: runs, experiments, registered models and versions.

Applied in place and idempotently, by the local engine in-process and by a run-once container on Docker
(`python -m mlspec.runtime.labels LABELS.json`). Each object remembers which keys mlspec set on it (the
`mlspec.labels` tag), so a tag removed from the spec is removed from MLflow and tags set by anyone else stay.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from pydantic import Field

from mlspec.runtime import tracking
from mlspec.runtime.contract import ContractFile
from mlspec.spec.base import Strict

NOTE = "mlflow.note.content"  # what MLflow's UI shows as the description of a run or an experiment
OWNED = "mlspec.labels"  # JSON list of the keys mlspec set on the object
DESCRIPTION = ":description"  # a registered model's description (not a tag) in that list; never a tag key


class LabelsError(Exception):
    """The labels file cannot be read."""


def label_tags(tags: Mapping[str, str], description: str = "") -> dict[str, str]:
    """The tags a run or experiment gets for a resource's labels: its tags, its description as MLflow's note,
    and the list of those keys; {} when it has none."""
    out = dict(tags)
    if description:
        out[NOTE] = description
    return {**out, OWNED: _keys(out)} if out else {}


def _keys(keys: Any) -> str:
    return json.dumps(sorted(keys), separators=(",", ":"))


def _owned(current: Mapping[str, str]) -> set[str]:
    try:
        found = json.loads(current.get(OWNED, "[]"))
    except ValueError:
        return set()
    return {k for k in found if isinstance(k, str)} if isinstance(found, list) else set()


def _changes(current: Mapping[str, str], wanted: Mapping[str, str],
             extra: Sequence[str] = ()) -> tuple[list[str], dict[str, str]]:
    """(keys to delete, tags to set) to go from `current` to `wanted`; `extra`: owned entries that are not tags."""
    before = _owned(current)
    if not wanted and not before and not extra:
        return [], {}  # never labelled and nothing to label: leave the object untouched
    full = {**wanted, OWNED: _keys([*wanted, *extra])}
    delete = sorted(k for k in before if k not in wanted and k != DESCRIPTION)
    return delete, {k: v for k, v in full.items() if current.get(k) != v}


def _forget(delete: Callable[..., Any], *args: str) -> None:
    """Delete a tag, which a step labelling the same object at the same time (two jobs of one experiment) may
    have deleted first."""
    from mlflow.exceptions import MlflowException

    try:
        delete(*args)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise


def _put(set_tag: Callable[..., Any], *args: str) -> None:
    """Set a tag that a step labelling the same object at the same time may be inserting too: MLflow's store looks
    for the row and then inserts it, so the later of two inserts fails on the key; set again, it updates the row
    the other one wrote."""
    for attempt in range(3):
        try:
            set_tag(*args)
            return
        except Exception as error:
            if "UNIQUE constraint failed" not in str(error) or attempt == 2:
                raise


def _plain(tags: Mapping[str, str], description: str = "") -> dict[str, str]:
    return {k: v for k, v in label_tags(tags, description).items() if k != OWNED}


def label_run(tracking_uri: str, run_id: str, tags: Mapping[str, str], description: str = "") -> None:
    mlflow_client = tracking.client(tracking_uri)
    delete, changed = _changes(mlflow_client.get_run(run_id).data.tags, _plain(tags, description))
    for key in delete:
        _forget(mlflow_client.delete_tag, run_id, key)
    tracking.set_tags(tracking_uri, run_id, changed)


def label_job_runs(tracking_uri: str, job: str, content_hash: str, tags: Mapping[str, str],
                   description: str = "") -> list[str]:
    """Label every run of a job at this content hash (attempts of an interrupted `up` included); their ids."""
    mlflow_client = tracking.client(tracking_uri)
    experiments = [e.experiment_id for e in mlflow_client.search_experiments()]
    if not experiments:
        return []
    runs = mlflow_client.search_runs(experiments, filter_string=f"tags.`mlspec.job` = '{job}' and "
                                                                f"tags.`mlspec.hash` = '{content_hash}'")
    for run in runs:
        label_run(tracking_uri, run.info.run_id, tags, description)
    return [run.info.run_id for run in runs]


def label_experiment(tracking_uri: str, name: str, tags: Mapping[str, str], description: str = "") -> bool:
    """Label the experiment called `name`; False when it does not exist (yet)."""
    mlflow_client = tracking.client(tracking_uri)
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is None:
        return False
    delete, changed = _changes(experiment.tags, _plain(tags, description))
    for key in delete:
        _forget(mlflow_client.delete_experiment_tag, experiment.experiment_id, key)
    for key, value in changed.items():
        _put(mlflow_client.set_experiment_tag, experiment.experiment_id, key, value)
    return True


def label_model(tracking_uri: str, name: str, tags: Mapping[str, str], description: str = "",
                versions: Sequence[int] = (), content_hash: str | None = None) -> bool:
    """Label a registered model (tags and description) and, with its tags, the given versions and those whose
    `mlspec.hash` tag is `content_hash`; False when the model is not registered."""
    from mlflow.exceptions import MlflowException

    mlflow_client = tracking.client(tracking_uri)
    try:
        model = mlflow_client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    current = dict(model.tags or {})
    # A description mlspec set goes when the spec drops it; one set by someone else stays.
    if (description or DESCRIPTION in _owned(current)) and (model.description or "") != description:
        mlflow_client.update_registered_model(name, description=description)
    delete, changed = _changes(current, dict(tags), [DESCRIPTION] if description else [])
    for key in delete:
        _forget(mlflow_client.delete_registered_model_tag, name, key)
    for key, value in changed.items():
        _put(mlflow_client.set_registered_model_tag, name, key, value)
    numbers = set(versions)
    if content_hash:
        found = mlflow_client.search_model_versions(f"name='{name}' and tag.`mlspec.hash`='{content_hash}'")
        numbers.update(int(v.version) for v in found)
    for number in sorted(numbers):
        version = mlflow_client.get_model_version(name, str(number))
        delete, changed = _changes(dict(version.tags or {}), dict(tags))
        for key in delete:
            _forget(mlflow_client.delete_model_version_tag, name, str(number), key)
        for key, value in changed.items():
            _put(mlflow_client.set_model_version_tag, name, str(number), key, value)
    return True


# --- the Docker target's run-once labeller ----------------------------------------------------------------------


class Labels(Strict):
    """Tags and a description."""

    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""


class JobLabels(Labels):
    job: str
    content_hash: str


class ModelLabels(Labels):
    name: str
    content_hash: str = Field(description="The mlspec.hash tag of the versions to label (its job's hash).")


class LabelsRun(ContractFile):
    """What the labeller applies to one workspace's MLflow."""

    noun: ClassVar[str] = "labels"
    error: ClassVar[type[Exception]] = LabelsError

    tracking_uri: str
    experiments: dict[str, Labels] = Field(default_factory=dict, description="Experiment name -> labels.")
    jobs: list[JobLabels] = Field(default_factory=list)
    models: list[ModelLabels] = Field(default_factory=list)


def apply(run: LabelsRun) -> dict[str, Any]:
    """Apply every label of the file; what was labelled."""
    done: dict[str, Any] = {"experiments": [], "runs": [], "models": []}
    for name, labels in sorted(run.experiments.items()):
        if label_experiment(run.tracking_uri, name, labels.tags, labels.description):
            done["experiments"].append(name)
    for job in run.jobs:
        done["runs"] += label_job_runs(run.tracking_uri, job.job, job.content_hash, job.tags, job.description)
    for model in run.models:
        if label_model(run.tracking_uri, model.name, model.tags, model.description, content_hash=model.content_hash):
            done["models"].append(model.name)
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlspec.runtime.labels", description=__doc__)
    parser.add_argument("labels", help="the labels JSON the program wrote")
    args = parser.parse_args(argv)
    try:
        run = LabelsRun.load(args.labels)
        done = apply(run)
    except Exception as error:  # MLflow unreachable or refusing a value: one line, the container's exit code
        print(f"mlspec: cannot apply labels: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print("mlspec: labelled " + json.dumps(done, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

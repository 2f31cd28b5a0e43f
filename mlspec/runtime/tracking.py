"""Thin MLflow tracking calls with explicit run ids: no fluent global state, so threads of one process can share it."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]

# Never part of a code snapshot: caches, version control and environments are not code, and can be huge.
SNAPSHOT_SKIP_DIRS = frozenset({
    "__pycache__", ".git", ".hg", ".svn", ".venv", "venv", ".mlspec", ".ipynb_checkpoints",
    ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", "node_modules",
})
SNAPSHOT_SKIP_SUFFIXES = (".pyc", ".pyo")


@functools.cache
def client(tracking_uri: str) -> MlflowClient:
    """One client per URI for the whole process (its store and connection pool are built once)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def artifact_uri(location: str) -> str:
    """An absolute folder as a file:// URI; a URI (mlflow-artifacts:/, s3://, file:) as given."""
    return Path(location).as_uri() if os.path.isabs(location) else location


def ensure_experiment(tracking_uri: str, name: str, artifact_location: str | None) -> str:
    """The experiment's id, creating it (or restoring a deleted one) when needed. Safe against a concurrent create.

    An existing experiment keeps its artifact location (MLflow cannot move one); None: the store's default.
    """
    from mlflow.exceptions import MlflowException

    mlflow_client = client(tracking_uri)
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is None:
        try:
            location = artifact_uri(artifact_location) if artifact_location else None
            return str(mlflow_client.create_experiment(name, artifact_location=location))
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = mlflow_client.get_experiment_by_name(name)
            assert experiment is not None
    if experiment.lifecycle_stage == "deleted":
        mlflow_client.restore_experiment(experiment.experiment_id)
    return str(experiment.experiment_id)


def start_run(
    tracking_uri: str,
    experiment_id: str,
    tags: Mapping[str, str],
    params: Mapping[str, str] | None = None,
    run_name: str | None = None,
) -> str:
    """Create a RUNNING run and return its id.

    Params given here are logged at once; a job whose script may log the same keys itself should pass none and
    call `log_params` after the command instead, because MLflow rejects a param logged twice with other text
    (the script's `1.0` against the spec's `1`) and the script would crash.
    """
    mlflow_client = client(tracking_uri)
    run = mlflow_client.create_run(experiment_id, tags=dict(tags), run_name=run_name)
    if params:
        log_params(tracking_uri, run.info.run_id, params)
    return str(run.info.run_id)


def log_params(tracking_uri: str, run_id: str, params: Mapping[str, str]) -> None:
    """Log the params the run does not have yet (those the script logged itself keep its values)."""
    from mlflow.entities import Param

    mlflow_client = client(tracking_uri)
    logged = mlflow_client.get_run(run_id).data.params
    missing = [Param(key, str(value)) for key, value in params.items() if key not in logged]
    if missing:
        mlflow_client.log_batch(run_id, params=missing)


def set_tags(tracking_uri: str, run_id: str, tags: Mapping[str, str]) -> None:
    from mlflow.entities import RunTag

    if tags:
        client(tracking_uri).log_batch(run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()])


def log_code_snapshot(tracking_uri: str, run_id: str, code_dir: str, artifact_path: str = "code") -> int:
    """Copy the code folder into the run's artifacts under `code/`, minus caches and environments; returns a file count.

    Call it before the command runs: the command may write into its own folder.
    """
    mlflow_client = client(tracking_uri)
    count = 0
    for folder, dirs, files in os.walk(code_dir):
        dirs[:] = sorted(d for d in dirs if d not in SNAPSHOT_SKIP_DIRS)
        relative = os.path.relpath(folder, code_dir)
        target = artifact_path if relative == "." else f"{artifact_path}/{Path(relative).as_posix()}"
        for name in sorted(files):
            path = os.path.join(folder, name)
            if name.endswith(SNAPSHOT_SKIP_SUFFIXES) or not os.path.isfile(path):  # dangling links, sockets
                continue
            try:
                mlflow_client.log_artifact(run_id, path, target)
            except FileNotFoundError:  # removed while we walked (a temp file of a process writing there)
                continue
            count += 1
    return count


def log_file(tracking_uri: str, run_id: str, path: str, artifact_path: str | None = None) -> None:
    """Log one file (the job log) into the run's artifacts; a missing file is skipped."""
    if os.path.isfile(path):
        client(tracking_uri).log_artifact(run_id, path, artifact_path)


def end_run(tracking_uri: str, run_id: str, status: RunStatus) -> None:
    """Mark the run terminated; this also overrides the FINISHED a script's own MLflow atexit hook wrote."""
    client(tracking_uri).set_terminated(run_id, status)

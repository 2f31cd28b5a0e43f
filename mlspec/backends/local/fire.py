"""One scheduled run, in a process of its own: `python -P -m mlspec.backends.local.fire WORKSPACE RESOURCE RUN`.

The supervisor starts it when a schedule is due. It runs what `mlspec up` armed, in a folder of its own
(`schedules/<resource>/run-<N>/`), on a fresh copy of each Data input's source, tags the MLflow run
`mlspec.scheduled`, keeps the digest of every model version it registers (what replicas verify), and records its
outcome in the schedule's row. The resource's own record is left as it is: a scheduled run is not a change.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

from mlspec.backends.local.paths import OWNER_ONLY_UMASK, WorkspacePaths
from mlspec.backends.local.processes import ID_VAR, STARTED_BY_VAR, SUPERVISOR, WORKSPACE_VAR
from mlspec.backends.local.schedule_state import finish, run_id_of, schedule_of
from mlspec.backends.local.state import StateStore
from mlspec.runtime.jobrun import InputBinding, JobRun
from mlspec.spec.schedule import SCHEDULED_TAG

KEEP_RUNS = 2  # run folders kept per schedule: this run's and the one before (to compare)
Outcome = tuple[str, str | None, str | None, list[Any]]  # status, MLflow run id, error, registered models


def run_folder(paths: WorkspacePaths, resource_id: str, run: int) -> Path:
    return (paths.root / "schedules" / resource_id.replace("/", "-") / f"run-{run}").resolve()


def _prune(folder: Path, run: int) -> None:
    for older in folder.parent.glob("run-*"):
        suffix = older.name.removeprefix("run-")
        if suffix.isdigit() and int(suffix) <= run - KEEP_RUNS:
            shutil.rmtree(older, ignore_errors=True)


def snapshot_source(source: str, target: Path) -> str:
    """A copy of the Data's source as it is now: the run reads rows that arrived since `up`, and never a file
    being written meanwhile."""
    path = Path(source)
    if path.is_dir():
        shutil.copytree(path, target, dirs_exist_ok=True)
        return str(target)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target / path.name)
    return str(target / path.name)


def run_marks(resource_id: str, workspace: str) -> dict[str, str]:
    """The supervisor's marks for every process of the run: the next `up` leaves them be, `down` stops them."""
    return {ID_VAR: run_id_of(resource_id), WORKSPACE_VAR: workspace, STARTED_BY_VAR: SUPERVISOR}


def job_contract(launch: dict[str, Any], folder: Path, resource_id: str, run: int, workspace: str) -> JobRun:
    """The armed job run, moved into this run's folder, reading fresh copies of its Data inputs."""
    template = JobRun.model_validate(launch["run"])
    inputs = dict(template.inputs)
    for name, source in launch.get("sources", {}).items():
        inputs[name] = InputBinding(path=snapshot_source(source, folder / "data" / name))
    outputs = {name: output.model_copy(update={"path": str(folder / "outputs" / name)})
               for name, output in template.outputs.items()}
    code = None
    if template.code:
        code = str(folder / "code")
        shutil.copytree(template.code, code, dirs_exist_ok=True)
    return template.model_copy(update={
        "workdir": str(folder), "inputs": inputs, "outputs": outputs, "code": code,
        "log_file": str(folder / "job.log"), "env": {**template.env, **run_marks(resource_id, workspace)},
        "tags": {**template.tags, SCHEDULED_TAG: "true", "mlspec.schedule.run": str(run)}})


def _job(launch: dict[str, Any], folder: Path, resource_id: str, run: int, workspace: str,
         store: StateStore, stop: threading.Event) -> Outcome:
    from mlspec.runtime.train import run_job

    contract = job_contract(launch, folder, resource_id, run, workspace)
    result = run_job(contract, on_line=print, stop=stop)
    return result.status, result.run_id, result.error, result.models


def _sweep(launch: dict[str, Any], folder: Path, resource_id: str, run: int, workspace: str,
           store: StateStore, stop: threading.Event) -> Outcome:
    from mlspec.runtime.sweep.runner import SweepTrials, run_sweep
    from mlspec.spec.sweep import SweepJob

    contract = job_contract(launch, folder, resource_id, run, workspace)
    # A study of its own, seeded anew: each scheduled sweep searches afresh instead of resuming the last.
    trials = SweepTrials(sweep=SweepJob.model_validate(launch["sweep"]), template=contract, folder=folder,
                         storage=folder / "optuna.db", seed=(int(contract.content_hash[:8], 16) + run) % 2**32)
    result = run_sweep(trials, on_line=print, stop=stop)
    return result.status, result.run_id, result.error, result.models


def newest_registered(store: StateStore, name: str) -> tuple[int, str] | None:
    """The newest version of `name` this workspace registered (by `up` or a scheduled retrain) and its digest."""
    row = store.db.execute("SELECT version, sha256 FROM model_digests WHERE name=? AND source='registered' "
                           "ORDER BY version DESC LIMIT 1", (name,)).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def _batch(launch: dict[str, Any], folder: Path, resource_id: str, run: int, workspace: str,
           store: StateStore, stop: threading.Event) -> Outcome:
    from mlspec.backends.local.handlers.batch import scorer_command
    from mlspec.runtime.batch.contract import BatchResult, BatchRun
    from mlspec.runtime.execute import run_command
    from mlspec.spec import ModelRef

    contract = BatchRun.model_validate(launch["run"])
    update: dict[str, Any] = {}
    if "input" in launch.get("sources", {}):
        update["input"] = snapshot_source(launch["sources"]["input"], folder / "data")
    ref = ModelRef.parse(launch["model"])
    newest = newest_registered(store, ref.name) if ref.version is None and ref.alias in (None, "latest") else None
    if newest is not None:  # `NAME` / `NAME@latest` scores with the newest version, a scheduled retrain's too
        update.update(model_uri=f"models:/{ref.name}/{newest[0]}", sha256=newest[1])
    contract = contract.model_copy(update=update)
    spec_file, result_file = folder / "batchrun.json", folder / "result.json"
    contract.dump(spec_file)
    process = JobRun.model_validate(launch["process"])
    process = process.model_copy(update={
        "command": scorer_command(launch["python"], spec_file, result_file), "code": str(folder),
        "workdir": str(folder), "log_file": str(folder / "batch.log"),
        "env": {**process.env, **run_marks(resource_id, workspace)}})
    print(f"scoring {contract.input} with {contract.model_uri} into {contract.output}", flush=True)
    execution = run_command(process, None, on_line=print, stop=stop)
    result = BatchResult.model_validate_json(result_file.read_text()) if result_file.exists() else None
    if result is None:
        return "failed", None, f"the batch scorer exited with code {execution.exit_code}", []
    return result.status, None, result.error, []


def _pipeline(launch: dict[str, Any], folder: Path, resource_id: str, run: int, workspace: str,
              store: StateStore, stop: threading.Event) -> Outcome:
    # Imported here: the pipeline's and AutoML's modules use this one's helpers (snapshot_source, run_marks).
    from mlspec.backends.local.schedule_pipeline import fire_pipeline

    return fire_pipeline(launch, folder, resource_id, run, workspace, store, stop)


def _automl(launch: dict[str, Any], folder: Path, resource_id: str, run: int, workspace: str,
            store: StateStore, stop: threading.Event) -> Outcome:
    from mlspec.backends.local.schedule_automl import fire_automl

    return fire_automl(launch, folder, resource_id, run, workspace, store, stop)


RUNNERS = {"job": _job, "sweep": _sweep, "batch": _batch, "pipeline": _pipeline, "automl": _automl}


def fire(paths: WorkspacePaths, resource_id: str, run: int, stop: threading.Event) -> str | None:
    """Run number `run` of the resource's schedule and record its outcome; None when it is no longer armed."""
    store = StateStore(paths.state_db)
    store.db.execute("PRAGMA busy_timeout=10000")
    try:
        row = schedule_of(store, resource_id)
        if row is None or row.runs != run:
            return None  # disarmed, or superseded, since the supervisor started it
        folder = run_folder(paths, resource_id, run)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        _prune(folder, run)
        try:
            status, run_id, error, models = RUNNERS[row.launch["kind"]](
                row.launch, folder, resource_id, run, str(paths.root.resolve()), store, stop)
        except Exception as exc:  # a bug or the environment: recorded as the run's failure, with its type
            status, run_id, error, models = "failed", None, f"{type(exc).__name__}: {exc}", []
        for model in models:
            if not model.reused:  # the version replicas and batch runs will check files against
                store.record_digest(model.name, int(model.version), model.sha256, model.run_id or run_id,
                                    "registered")
        finish(store, resource_id, run, status, run_id, error)
        registered = ", ".join(f"{m.name}:{m.version}{' (reused)' if m.reused else ''}" for m in models)
        store.event(resource_id, f"scheduled run {run} {status}" + (f": {error}" if error else "")
                    + (f"; registered {registered}" if registered else ""))
        return status
    finally:
        store.close()


def main() -> int:
    from mlspec.runtime.contract import stop_on_sigterm

    os.umask(OWNER_ONLY_UMASK)
    stop = stop_on_sigterm()  # `down` or a disarm stops the run: its processes are stopped, the run KILLED
    workspace, resource_id, run = sys.argv[1], sys.argv[2], int(sys.argv[3])
    status = fire(WorkspacePaths(Path(workspace)), resource_id, run, stop)
    print(f"==> mlspec: scheduled run {run} of {resource_id}: {status or 'no longer armed'}", flush=True)
    return 0 if status in (None, "succeeded") else 1


if __name__ == "__main__":
    sys.exit(main())

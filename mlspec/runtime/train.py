"""A training job's whole lifecycle, in one process: `run_job`, or `python -m mlspec.runtime.train JOBRUN.json`."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from mlspec.runtime import tracking
from mlspec.runtime.contract import stop_on_sigterm
from mlspec.runtime.execute import ExecResult, LineCallback, run_command
from mlspec.runtime.jobrun import JobRun, JobRunError
from mlspec.runtime.packaging import RegisteredModel, prewarm, register_outputs
from mlspec.runtime.peers import Peers, join_peers

Status = Literal["succeeded", "failed", "cancelled"]
_RUN_STATUS: dict[Status, tracking.RunStatus] = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}


class TrainResult(BaseModel):
    """What a training run came to: the result JSON the engine reads back."""

    status: Status
    job: str
    run_id: str | None = None
    experiment_id: str | None = None
    exit_code: int | None = Field(None, description="The last attempt's exit code; negative: killed by a signal.")
    attempts: int = 0
    duration_s: float = 0.0
    timed_out: bool = False
    models: list[RegisteredModel] = Field(default_factory=list)
    log_tail: list[str] = Field(default_factory=list)
    error: str | None = Field(None, description="Why it failed, in words; None when it succeeded.")


def run_tags(run: JobRun) -> dict[str, str]:
    return {
        **run.tags,
        "mlspec.job": run.job,
        "mlspec.hash": run.content_hash,
        "mlflow.source.type": "JOB",
        "mlflow.source.name": run.job,
    }


def run_job(run: JobRun, on_line: LineCallback | None = None, stop: threading.Event | None = None,
            on_run: Callable[[str], None] | None = None) -> TrainResult:
    """Ensure the experiment, start a run, snapshot the code, run the command, register outputs, end the run.

    `on_run` receives the MLflow run's id as soon as it exists (a sweep reads the trial's metrics while it runs).

    User errors (a missing model file, a bad placeholder, MLflow refusing a value) end as a failed result with a
    message, never an exception; only a bug in mlspec propagates, after the run was marked FAILED.
    """
    from mlflow.exceptions import MlflowException

    started = time.monotonic()
    result = TrainResult(status="failed", job=run.job)
    execution: ExecResult | None = None
    peers: Peers | None = None
    if run.peers is not None:  # first of all: node 0 listens at once, the others wait for it here
        stop = stop or threading.Event()
        peers = join_peers(run.peers, stop)
    try:
        if peers is not None and peers.failure:
            raise JobRunError(f"job '{run.job}': {peers.failure}")
        result.experiment_id = tracking.ensure_experiment(run.tracking_uri, run.experiment, run.artifact_location)
        result.run_id = tracking.start_run(run.tracking_uri, result.experiment_id, run_tags(run), run_name=run.job)
        if on_run is not None:
            on_run(result.run_id)
        if run.code:
            tracking.log_code_snapshot(run.tracking_uri, result.run_id, run.code)
        prewarm(run)
        execution = run_command(run, result.run_id, on_line, stop)
        # After the command: a param the script logged itself keeps the script's text (see tracking.start_run).
        tracking.log_params(run.tracking_uri, result.run_id, run.literal_params())
        # Node 0 registers only once every other node reported success; a node stopped for a peer names it.
        elsewhere = None if peers is None else peers.settle() if execution.ok else peers.failure
        if execution.ok and elsewhere is None:
            check_outputs_written(run)
            result.models = register_outputs(run.tracking_uri, result.run_id, run)
            result.status = "succeeded"
        elif elsewhere is not None:
            result.error = (f"job '{run.job}' was stopped: {elsewhere}" if execution.ok or execution.cancelled
                            else f"{_failure(run, execution)}; {elsewhere}")
        else:
            result.status = "cancelled" if execution.cancelled else "failed"
            result.error = _failure(run, execution)
    except (JobRunError, MlflowException, OSError) as error:
        result.error = _message(error)
    except KeyboardInterrupt:
        result.status, result.error = "cancelled", f"job '{run.job}' was interrupted"
    except BaseException as error:
        result.error = f"internal error: {type(error).__name__}: {error}"
        raise
    finally:
        _finish(run, result, execution, started, on_line)
        if peers is not None:
            peers.finish(0 if result.status == "succeeded" else result.exit_code or 1)
    return result


def check_outputs_written(run: JobRun) -> None:
    """A model output the job must register but left empty fails the job in its own words, naming the place."""
    for name, output in run.outputs.items():
        place = Path(output.path)
        if output.register_as and (not place.exists() or (place.is_dir() and not any(place.iterdir()))):
            raise JobRunError(
                f"job '{run.job}' wrote nothing to outputs.{name} ({place}); save the model there (an MLflow model, "
                "or a joblib/pickle/TorchScript file) - the command receives that path as ${{outputs." + name + "}}"
            )


def _finish(
    run: JobRun, result: TrainResult, execution: ExecResult | None, started: float, on_line: LineCallback | None
) -> None:
    """Record the outcome in the result, the job log and the MLflow run; a failure here never hides the first error."""
    if execution is not None:
        result.exit_code, result.attempts = execution.exit_code, execution.attempts
        result.timed_out, result.log_tail = execution.timed_out, execution.log_tail
    for model in result.models:
        _note(run, f"==> mlspec: registered {model.name} version {model.version} ({model.flavor}, "
                   f"sha256 {model.sha256[:12]})", on_line)
        for warning in model.warnings:
            _note(run, f"==> mlspec: warning: {warning}", on_line)
    if result.error:
        _note(run, f"==> mlspec: error: {result.error}", on_line)
    if result.run_id is not None:
        try:
            tracking.log_file(run.tracking_uri, result.run_id, run.log_path, "logs")
            tags = {"mlspec.status": result.status, "mlspec.attempts": str(result.attempts)}
            if result.exit_code is not None:
                tags["mlspec.exit_code"] = str(result.exit_code)
            if result.timed_out:
                tags["mlspec.timed_out"] = "true"
            tracking.set_tags(run.tracking_uri, result.run_id, tags)
            tracking.end_run(run.tracking_uri, result.run_id, _RUN_STATUS[result.status])
        except Exception as error:
            if result.status == "succeeded":
                result.status = "failed"
            result.error = result.error or f"cannot record the run's end in MLflow: {_message(error)}"
    result.duration_s = round(time.monotonic() - started, 3)


def _failure(run: JobRun, execution: ExecResult) -> str:
    if execution.timed_out:
        return f"job '{run.job}' timed out after {run.timeout:g} s and was stopped"
    if execution.cancelled:
        return f"job '{run.job}' was cancelled"
    tries = f" (attempt {execution.attempts} of {execution.attempts})" if execution.attempts > 1 else ""
    last = next((line.strip() for line in reversed(execution.log_tail) if line.strip()), "")
    last = last.removeprefix("==> mlspec: ")  # the node launcher's own summary of what failed
    return f"job '{run.job}' exited with code {execution.exit_code}{tries}" + (f": {last}" if last else "")


def _message(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error)  # MlflowException keeps its text in .message
    if isinstance(error, OSError) and error.filename:
        text = f"{error.strerror or error}: {error.filename}"
    return text if isinstance(error, JobRunError) else f"{type(error).__name__}: {text}"


def _note(run: JobRun, text: str, on_line: LineCallback | None) -> None:
    try:
        with open(run.log_path, "a", encoding="utf-8") as log:
            log.write(text + "\n")
    except OSError:
        pass  # the log's folder may be what failed; the message still reaches the result
    if on_line is not None:
        with contextlib.suppress(Exception):  # a broken display must not turn a result into a traceback
            on_line(text)


# --- command line -------------------------------------------------------------------------------------------------

RESULT_PREFIX = "mlspec-result: "


def result_line(result: TrainResult) -> str:
    """The outcome as one line of JSON: status, exit code and each registered model's name, version and digest."""
    return json.dumps({"job": result.job, "status": result.status, "exit_code": result.exit_code,
                       "models": [{"name": m.name, "version": m.version, "sha256": m.sha256}
                                  for m in result.models]}, sort_keys=True, separators=(",", ":"))


def registered_versions(logs: str) -> dict[str, int]:
    """Model name -> version from the last result line in a job's output; {} when it has none."""
    return {name: int(version) for name, (version, _) in registered_models(logs).items()}


def registered_digests(logs: str) -> dict[str, str]:
    """Model name -> the sha256 of the version's files, computed as it was registered (the result line's)."""
    return {name: digest for name, (_, digest) in registered_models(logs).items() if digest}


def registered_models(logs: str) -> dict[str, tuple[int, str]]:
    """Model name -> (version, sha256) from the last result line in a job's output; {} when it has none."""
    for line in reversed(logs.splitlines()):
        _, found, text = line.partition(RESULT_PREFIX)
        if found:
            try:
                return {str(m["name"]): (int(m["version"]), str(m.get("sha256") or ""))
                        for m in json.loads(text).get("models", [])}
            except (ValueError, TypeError, KeyError, AttributeError):
                return {}
    return {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlspec.runtime.train", description=__doc__)
    parser.add_argument("jobrun", help="the JobRun JSON the engine wrote")
    parser.add_argument("--result", help="where to write the result JSON (default: WORKDIR/result.json)")
    args = parser.parse_args(argv)
    try:
        run = JobRun.load(args.jobrun)
    except JobRunError as error:
        print(f"mlspec: {error}", file=sys.stderr)
        return 2

    stop = stop_on_sigterm()  # the job's processes are stopped and the run ends as KILLED

    def echo(line: str) -> None:  # container logs show the job's output as it happens
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        result = run_job(run, echo, stop)
    except Exception as error:  # a bug in mlspec: keep the traceback for its report, still write a result
        traceback.print_exc()
        result = TrainResult(status="failed", job=run.job, error=f"internal error: {type(error).__name__}: {error}")
    from mlspec.runtime.runner_exit import finish  # it reads this module's result line

    # One machine-readable line on stdout: a container's logs are all a Docker deployment reads back.
    return finish(result, Path(args.result) if args.result else Path(run.workdir) / "result.json",
                  f"job '{run.job}' succeeded", "job")

if __name__ == "__main__":
    sys.exit(main())

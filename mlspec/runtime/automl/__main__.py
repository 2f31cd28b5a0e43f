"""`python -m mlspec.runtime.automl AUTOMLRUN.json`: run one AutoML job apart from the engine, as a container or a
pod does; its last line on stdout says which model versions it registered, as a training run's does."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from mlspec.runtime.automl.contract import AutoMLRun
from mlspec.runtime.automl.runner import AutoMLResult, run_automl
from mlspec.runtime.contract import stop_on_sigterm, write_result
from mlspec.runtime.jobrun import JobRunError
from mlspec.runtime.train import RESULT_PREFIX, TrainResult, result_line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlspec.runtime.automl", description=__doc__)
    parser.add_argument("automlrun", help="the AutoMLRun JSON the engine wrote")
    parser.add_argument("--result", help="where to write the result JSON (default: WORKDIR/result.json)")
    args = parser.parse_args(argv)
    try:
        run = AutoMLRun.load(args.automlrun)
        Path(run.workdir).mkdir(parents=True, exist_ok=True)
    except (JobRunError, OSError) as error:
        print(f"mlspec: {error}", file=sys.stderr)
        return 2

    stop = stop_on_sigterm()  # `docker stop`, a pod's termination: the searches stop and the run ends KILLED
    name = run.job

    def echo(line: str) -> None:  # container logs show the search's progress as it happens
        sys.stdout.write(f"[{name}] {line}\n")
        sys.stdout.flush()

    try:
        result = run_automl(run, on_line=echo, stop=stop)
    except Exception as error:  # a bug in mlspec, or the tracking server gone: keep the traceback, still a result
        traceback.print_exc()
        result = AutoMLResult(status="failed", error=f"internal error: {type(error).__name__}: {error}")
    outcome = result_of(name, result)
    problem = write_result(outcome, Path(args.result) if args.result else Path(run.workdir) / "result.json")
    if problem:
        print(f"mlspec: {problem}", file=sys.stderr)
        return 1
    # One machine-readable line on stdout, the training runner's: the engine reads the versions from the logs.
    print(RESULT_PREFIX + result_line(outcome), flush=True)
    if result.status == "succeeded":
        models = ", ".join(f"{m.name}:{m.version}" for m in result.models)
        print(f"mlspec: AutoML job '{name}' succeeded: best {result.best_algorithm} of {result.candidates} "
              f"candidates" + (f", registered {models}" if models else ""), file=sys.stderr)
        return 0
    print(f"mlspec: {result.error or f'AutoML job {name!r} failed'}", file=sys.stderr)
    return 1


def result_of(name: str, result: AutoMLResult) -> TrainResult:
    """The AutoML job's outcome in the training runner's result shape (status, run, models, error)."""
    return TrainResult(status=result.status, job=name, run_id=result.run_id, models=result.models,
                       exit_code=0 if result.status == "succeeded" else 1, error=result.error)


if __name__ == "__main__":
    sys.exit(main())

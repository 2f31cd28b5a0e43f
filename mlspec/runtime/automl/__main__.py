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
from mlspec.runtime.contract import stop_on_sigterm
from mlspec.runtime.jobrun import JobRunError
from mlspec.runtime.runner_exit import echo_to_log, finish
from mlspec.runtime.train import TrainResult


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
    try:
        result = run_automl(run, on_line=echo_to_log(run.job), stop=stop)
    except Exception as error:  # a bug in mlspec, or the tracking server gone: keep the traceback, still a result
        traceback.print_exc()
        result = AutoMLResult(status="failed", error=f"internal error: {type(error).__name__}: {error}")
    return finish(result_of(run.job, result), Path(args.result) if args.result else Path(run.workdir) / "result.json",
                  f"AutoML job '{run.job}' succeeded: best {result.best_algorithm} of {result.candidates} candidates",
                  "AutoML job")


def result_of(name: str, result: AutoMLResult) -> TrainResult:
    """The AutoML job's outcome in the training runner's result shape (status, run, models, error)."""
    return TrainResult(status=result.status, job=name, run_id=result.run_id, models=result.models,
                       exit_code=0 if result.status == "succeeded" else 1, error=result.error)


if __name__ == "__main__":
    sys.exit(main())

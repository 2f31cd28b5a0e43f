"""`python -m mlspec.runtime.sweep SWEEPRUN.json`: run (or resume) one sweep apart from the engine, as a container or
a pod does; its last line on stdout says which model versions it registered, as a training run's does."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from mlspec.runtime.contract import stop_on_sigterm
from mlspec.runtime.jobrun import JobRunError
from mlspec.runtime.runner_exit import echo_to_log, finish
from mlspec.runtime.sweep.contract import SweepRun
from mlspec.runtime.sweep.runner import SweepResult, SweepTrials, run_sweep
from mlspec.runtime.train import TrainResult


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlspec.runtime.sweep", description=__doc__)
    parser.add_argument("sweeprun", help="the SweepRun JSON the engine wrote")
    parser.add_argument("--result", help="where to write the result JSON (default: FOLDER/result.json)")
    args = parser.parse_args(argv)
    try:
        run = SweepRun.load(args.sweeprun)
    except JobRunError as error:
        print(f"mlspec: {error}", file=sys.stderr)
        return 2

    stop = stop_on_sigterm()  # running trials are stopped and asked again when the sweep is run again
    name = run.sweep.name
    folder = Path(run.folder)
    trials = SweepTrials(sweep=run.sweep, template=run.template, folder=folder, storage=folder / "optuna.db",
                         seed=run.seed)
    try:
        result = run_sweep(trials, on_line=echo_to_log(name), stop=stop)
    except Exception as error:  # a bug in mlspec: keep the traceback for its report, still write a result
        traceback.print_exc()
        result = SweepResult(status="failed", error=f"internal error: {type(error).__name__}: {error}")
    return finish(result_of(name, result), Path(args.result) if args.result else folder / "result.json",
                  f"sweep '{name}' succeeded after {result.finished} trials, best trial {result.best_trial}", "sweep")


def result_of(name: str, result: SweepResult) -> TrainResult:
    """The sweep's outcome in the training runner's result shape (status, run, models, error)."""
    return TrainResult(status=result.status, job=name, run_id=result.run_id, models=result.models,
                       exit_code=0 if result.status == "succeeded" else 1, error=result.error)


if __name__ == "__main__":
    sys.exit(main())

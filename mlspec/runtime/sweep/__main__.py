"""`python -m mlspec.runtime.sweep SWEEPRUN.json`: run (or resume) one sweep apart from the engine, as a container or
a pod does; its last line on stdout says which model versions it registered, as a training run's does."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from mlspec.runtime.contract import stop_on_sigterm, write_result
from mlspec.runtime.jobrun import JobRunError
from mlspec.runtime.sweep.contract import SweepRun
from mlspec.runtime.sweep.runner import SweepResult, SweepTrials, run_sweep
from mlspec.runtime.train import RESULT_PREFIX, TrainResult, result_line


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

    def echo(line: str) -> None:  # container logs show the sweep's progress as it happens
        sys.stdout.write(f"[{name}] {line}\n")
        sys.stdout.flush()

    folder = Path(run.folder)
    trials = SweepTrials(sweep=run.sweep, template=run.template, folder=folder, storage=folder / "optuna.db",
                         seed=run.seed)
    try:
        result = run_sweep(trials, on_line=echo, stop=stop)
    except Exception as error:  # a bug in mlspec: keep the traceback for its report, still write a result
        traceback.print_exc()
        result = SweepResult(status="failed", error=f"internal error: {type(error).__name__}: {error}")
    problem = write_result(result_of(name, result), Path(args.result) if args.result else folder / "result.json")
    if problem:
        print(f"mlspec: {problem}", file=sys.stderr)
        return 1
    # One machine-readable line on stdout, the training runner's: the engine reads the versions from the logs.
    print(RESULT_PREFIX + result_line(result_of(name, result)), flush=True)
    if result.status == "succeeded":
        models = ", ".join(f"{m.name}:{m.version}" for m in result.models)
        print(f"mlspec: sweep '{name}' succeeded after {result.finished} trials, best trial {result.best_trial}"
              + (f", registered {models}" if models else ""), file=sys.stderr)
        return 0
    print(f"mlspec: {result.error or f'sweep {name!r} failed'}", file=sys.stderr)
    return 1


def result_of(name: str, result: SweepResult) -> TrainResult:
    """The sweep's outcome in the training runner's result shape (status, run, models, error)."""
    return TrainResult(status=result.status, job=name, run_id=result.run_id, models=result.models,
                       exit_code=0 if result.status == "succeeded" else 1, error=result.error)


if __name__ == "__main__":
    sys.exit(main())

"""`python -m mlspec.runtime.pipeline PIPELINERUN.json`: run one pipeline apart from the engine, as a container or a
pod does (unchanged steps reused from its folder); its last line on stdout says which model versions it registered,
as a training run's does."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence

from mlspec.runtime.contract import stop_on_sigterm
from mlspec.runtime.jobrun import JobRunError
from mlspec.runtime.pipeline.contract import PipelineRun
from mlspec.runtime.pipeline.runner import PipelineResult, run_pipeline
from mlspec.runtime.runner_exit import echo_to_log
from mlspec.runtime.train import RESULT_PREFIX


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlspec.runtime.pipeline", description=__doc__)
    parser.add_argument("pipelinerun", help="the PipelineRun JSON the engine wrote")
    args = parser.parse_args(argv)
    try:
        run = PipelineRun.load(args.pipelinerun)
    except JobRunError as error:
        print(f"mlspec: {error}", file=sys.stderr)
        return 2

    stop = stop_on_sigterm()  # running steps are stopped; finished ones are reused when it runs again

    try:
        result = run_pipeline(run, on_line=echo_to_log(run.name), stop=stop)
    except Exception as error:  # a bug in mlspec or an unreachable server: keep the traceback, still say the outcome
        traceback.print_exc()
        result = PipelineResult(status="failed", error=f"internal error: {type(error).__name__}: {error}")
    print(RESULT_PREFIX + result_line(run.name, result), flush=True)
    if result.status == "succeeded":
        steps = ", ".join(f"{name} {step.status}" for name, step in result.steps.items())
        print(f"mlspec: pipeline '{run.name}' succeeded ({steps})", file=sys.stderr)
        return 0
    print(f"mlspec: {result.error or f'pipeline {run.name!r} failed'}", file=sys.stderr)
    return 1


def result_line(name: str, result: PipelineResult) -> str:
    """The training runner's result line (`mlspec.runtime.train.result_line`) for the whole pipeline: the versions
    its steps registered, reused steps' included, so what serves them finds them in the log."""
    models = {m["name"]: {"name": m["name"], "version": int(m["version"]), "sha256": m["sha256"]}
              for step in result.steps.values() for m in step.models}
    return json.dumps({"job": name, "status": result.status, "exit_code": 0 if result.status == "succeeded" else 1,
                       "models": [models[n] for n in sorted(models)]}, sort_keys=True, separators=(",", ":"))


if __name__ == "__main__":
    sys.exit(main())

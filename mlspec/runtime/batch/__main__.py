"""`python -m mlspec.runtime.batch BATCHRUN.json [--result RESULT.json] [--result-line]`: one batch endpoint run,
exit 0 or 1."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from mlspec.runtime.batch.contract import BatchResult, BatchRun, BatchRunError, result_line
from mlspec.runtime.contract import stop_on_sigterm, write_result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlspec.runtime.batch", description=__doc__)
    parser.add_argument("batchrun", help="the BatchRun JSON the engine wrote")
    parser.add_argument("--result", help="where to write the result JSON (default: none, only the exit code)")
    parser.add_argument("--result-line", action="store_true",
                        help="also print the result as one line of JSON on stdout (for container logs)")
    args = parser.parse_args(argv)
    try:
        run = BatchRun.load(args.batchrun)
    except BatchRunError as error:
        print(f"mlspec: {error}", file=sys.stderr)
        return 2

    stop = stop_on_sigterm()  # checked between mini-batches: the journal is then ready for a resume

    def echo(line: str) -> None:
        sys.stdout.write(f"[{run.endpoint}] {line}\n")
        sys.stdout.flush()

    import mlflow  # noqa: F401 (imported for the run anyway; here so that the freeze below covers it)
    import pyarrow  # noqa: F401

    from mlspec.runtime.batch.runner import run_batch
    from mlspec.runtime.heap import settle_heap

    settle_heap()  # this process's start-up heap: the run's own collections need not walk it again

    try:
        result = run_batch(run, echo, stop)
    except Exception as error:  # a bug in mlspec: keep the traceback for its report, still write a result
        traceback.print_exc()
        result = BatchResult(status="failed", endpoint=run.endpoint, model_uri=run.model_uri,
                             error=f"internal error: {type(error).__name__}: {error}")
    problem = write_result(result, Path(args.result)) if args.result else None
    if args.result_line:
        print(result_line(result), flush=True)
    if problem:
        print(f"mlspec: {problem}", file=sys.stderr)
        return 1
    if result.status == "succeeded":
        print(f"mlspec: batch endpoint '{run.endpoint}' scored {result.rows_scored} rows "
              f"({result.rows_failed} failed) into {run.output}", file=sys.stderr)
        return 0
    print(f"mlspec: {result.error or f'batch endpoint {run.endpoint!r} failed'}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

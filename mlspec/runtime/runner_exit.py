"""How a runner run apart from the engine (a sweep's or an AutoML job's, in a container or a pod) reports: its
progress on stdout as it happens, its result file, the training runner's result line and its exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from mlspec.runtime.contract import write_result
from mlspec.runtime.train import RESULT_PREFIX, TrainResult, result_line


def echo_to_log(name: str) -> Callable[[str], None]:
    """Print each line prefixed by the run's name, flushed, so container logs show the progress as it happens."""

    def echo(line: str) -> None:
        sys.stdout.write(f"[{name}] {line}\n")
        sys.stdout.flush()

    return echo


def finish(outcome: TrainResult, result_path: Path, done: str, noun: str) -> int:
    """Write the result JSON and print the result line on stdout (the engine reads the versions from the logs), then
    `done` or the error on stderr; the exit code: 0 succeeded, 1 failed or the result could not be written."""
    problem = write_result(outcome, result_path)
    if problem:
        print(f"mlspec: {problem}", file=sys.stderr)
        return 1
    print(RESULT_PREFIX + result_line(outcome), flush=True)
    if outcome.status == "succeeded":
        models = ", ".join(f"{m.name}:{m.version}" for m in outcome.models)
        print(f"mlspec: {done}" + (f", registered {models}" if models else ""), file=sys.stderr)
        return 0
    print(f"mlspec: {outcome.error or f'{noun} {outcome.job!r} failed'}", file=sys.stderr)
    return 1

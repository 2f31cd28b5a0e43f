"""Training overhead: the iris script by hand vs through mlspec's runner (a subprocess, and in-process as the engine).

    .venv/bin/python bench/training_overhead.py [--repeat N]

Target (DESIGN.md §6): a job's overhead over running the script by hand is at most 1.5 s on the in-process path.
The script logs to MLflow only when mlspec gives it a run (MLFLOW_RUN_ID), and importing mlflow costs it
seconds, so the table has two baselines: the bare script, and the script logging into a run made beforehand.
mlspec's own cost is the difference to the second; the difference to the first adds the script's own logging.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IRIS = REPO / "examples" / "iris"
sys.path.insert(0, str(REPO))

from mlspec.runtime.jobrun import JobRun  # noqa: E402 - after the path setup, so the bench runs from anywhere


def job_run(root: Path, index: int, tracking_uri: str) -> JobRun:
    workdir = root / "runs" / f"run{index}"
    return JobRun(
        job="train", experiment="bench", tracking_uri=tracking_uri, artifact_location=str(root / "artifacts"),
        command="python train.py --data ${{inputs.data}} --algo logistic --C ${{inputs.C}}"
        " --model-dir ${{outputs.model}}",
        code=str(IRIS / "src"), workdir=str(workdir),
        inputs={"data": {"path": str(IRIS / "data" / "iris.csv")}, "C": {"value": 1.0}},  # type: ignore[dict-item]
        outputs={"model": {"path": str(workdir / "outputs" / "model"), "type": "model",  # type: ignore[dict-item]
                           "register_as": "iris-bench", "flavor": "sklearn"}},
        path_prefix=str(Path(sys.executable).parent), content_hash=f"bench-{index}",
    )


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def by_hand(root: Path, env: dict[str, str] | None = None) -> float:
    argv = [sys.executable, "train.py", "--data", str(IRIS / "data" / "iris.csv"), "--model-dir", str(root / "x")]
    return timed(lambda: subprocess.run(argv, cwd=IRIS / "src", env=env, check=True, capture_output=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each runs every path once (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlspec-bench-") as folder:
        measure(Path(folder), args.repeat)


def measure(root: Path, repeat: int) -> None:
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    from mlspec.runtime import tracking
    from mlspec.runtime.execute import run_command
    from mlspec.runtime.packaging import prewarm, register_outputs
    from mlspec.runtime.train import run_tags

    # Outside every timing, as in an `up`: the engine creates the store (MLflow's migrations) before any job.
    experiment_id = tracking.ensure_experiment(tracking_uri, "bench", str(root / "artifacts"))
    print(f"store {tracking_uri}; {repeat} run(s) of each path\n", flush=True)

    def hand_with_run() -> float:
        run_id = tracking.start_run(tracking_uri, experiment_id, {"bench": "by-hand"})
        seconds = by_hand(root, {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_RUN_ID": run_id})
        tracking.end_run(tracking_uri, run_id, "FINISHED")
        return seconds

    index = 0

    def through_cli() -> float:
        nonlocal index
        index += 1
        path = root / f"jobrun{index}.json"
        job_run(root, index, tracking_uri).dump(path)
        argv = [sys.executable, "-m", "mlspec.runtime.train", str(path), "--result", str(path) + ".result"]
        return timed(lambda: subprocess.run(argv, env=env, check=True, capture_output=True))

    phases: dict[str, list[float]] = {}

    def in_process() -> float:
        nonlocal index
        index += 1
        run = job_run(root, index, tracking_uri)
        marks = [("start", time.perf_counter())]
        run_id = tracking.start_run(tracking_uri, experiment_id, run_tags(run), run_name=run.job)
        tracking.log_code_snapshot(tracking_uri, run_id, str(run.code))
        marks.append(("start_run + snapshot", time.perf_counter()))
        prewarm(run)  # as run_job does: registration's imports load while the script runs
        result = run_command(run, run_id)
        assert result.ok, result.log_tail
        marks.append(("run_command (the script)", time.perf_counter()))
        tracking.log_params(tracking_uri, run_id, run.literal_params())
        tracking.log_file(tracking_uri, run_id, run.log_path, "logs")
        marks.append(("params + log", time.perf_counter()))
        register_outputs(tracking_uri, run_id, run)
        marks.append(("register_outputs", time.perf_counter()))
        tracking.end_run(tracking_uri, run_id, "FINISHED")
        marks.append(("end_run", time.perf_counter()))
        for (_, before), (name, after) in itertools.pairwise(marks):
            phases.setdefault(name, []).append(after - before)
        return marks[-1][1] - marks[0][1]

    # The engine's first job also pays for registration's imports (sklearn, mlflow.pyfunc): timed on its own.
    first = in_process()
    phases.clear()
    # Rounds interleave the paths, so a machine that slows down for a while slows all of them alike.
    hand: list[float] = []
    hand_logging: list[float] = []
    cli: list[float] = []
    engine: list[float] = []
    for round_ in range(1, repeat + 1):
        hand.append(by_hand(root))
        hand_logging.append(hand_with_run())
        engine.append(in_process())
        cli.append(through_cli())
        print(f"round {round_}: (a) {hand[-1]:.2f}  (a1) {hand_logging[-1]:.2f}  (c) {engine[-1]:.2f}  "
              f"(b) {cli[-1]:.2f}", flush=True)

    def paired(times: list[float], baseline: list[float]) -> float:
        """Median of the per-round differences: steadier than a difference of medians on a noisy machine."""
        if len(times) != len(baseline):
            return statistics.median(times) - statistics.median(baseline)
        return statistics.median(t - b for t, b in zip(times, baseline, strict=True))

    rows = [
        ("(a)  by hand", hand),
        ("(a1) by hand, script logging to a run", hand_logging),
        ("(b)  python -m mlspec.runtime.train", cli),
        ("(c)  in-process, first job of the process", [first]),
        ("(c)  in-process, later jobs", engine),
    ]
    base = statistics.median(hand)
    print(f"\n{'path':44} {'median s':>9} {'- (a) s':>9} {'- (a1) s':>9} {'/ (a)':>7}")
    for label, times in rows:
        median = statistics.median(times)
        print(f"{label:44} {median:9.3f} {paired(times, hand):9.3f} {paired(times, hand_logging):9.3f} "
              f"{median / base:7.2f}")
    print("(differences are medians of per-round differences; the first job is compared with the medians)")
    print("\n(c) by phase, median s (run_command includes the script, which imports mlflow itself):")
    for name, times in phases.items():
        print(f"  {name:28} {statistics.median(times):7.3f}")
    own = sum(statistics.median(t) for name, t in phases.items() if not name.startswith("run_command"))
    overhead = paired(engine, hand_logging)
    verdict = "meets" if overhead <= 1.5 else "misses"
    print(f"\nin-process overhead over (a1): {overhead:.2f} s, {verdict} the 1.5 s target "
          f"(mlspec's own phases outside the command: {own:.3f} s; "
          f"{paired(engine, hand):.2f} s over (a), with the script's own MLflow logging)")
    print(f"subprocess overhead over (a1): {paired(cli, hand_logging):.2f} s "
          "(starting Python, importing mlflow and opening its sqlite store before the command can have a run id)")


if __name__ == "__main__":
    main()

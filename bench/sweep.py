"""Trials per minute of a 16-trial sweep (examples/sweep, max_concurrent_trials: 2) through `mlspec up`, against
the same 16 trials run one after another by hand, and mlspec's overhead per trial.

    PYTHONPATH=. .venv/bin/python bench/sweep.py [--trials 16] [--concurrent 2]

By hand is measured twice: the bare script (no tracking), and the script logging to an MLflow sqlite store as it
does under mlspec (a run created for it, MLFLOW_RUN_ID set): the second does the same work per trial.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_SPEEDUP = 1.7


def _spec(folder: Path, trials: int, concurrent: int) -> None:
    shutil.copytree(REPO / "examples" / "sweep", folder, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    spec = folder / "mlspec.yaml"
    text = spec.read_text().replace("max_total_trials: 12", f"max_total_trials: {trials}")
    text = text.replace("max_concurrent_trials: 2", f"max_concurrent_trials: {concurrent}")
    # Every trial runs to its end: the comparison is of the same work.
    text = "\n".join(line for line in text.splitlines() if not line.startswith("early_termination:"))
    spec.write_text(text + "\n")


def _child_runs(folder: Path) -> list:  # type: ignore[type-arg]
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / '.mlspec' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("digits-sweep")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return sorted((r for r in runs if r.data.tags.get("mlflow.parentRunId")), key=lambda r: r.info.start_time)


def _by_hand(folder: Path, params: list[dict[str, str]], tracked: bool) -> list[float]:
    """Each trial's command, one after another, as a person would type it; seconds each."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{folder / 'hand.db'}"
    client = MlflowClient(uri) if tracked else None
    experiment = client.create_experiment("hand") if client else None
    took = []
    for index, values in enumerate(params):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        started = time.perf_counter()
        if client is not None and experiment is not None:
            env.update(MLFLOW_TRACKING_URI=uri, MLFLOW_RUN_ID=client.create_run(experiment).info.run_id)
        subprocess.run([sys.executable, "train.py", "--alpha", values["alpha"], "--loss", values["loss"],
                        "--epochs", values["epochs"], "--model-dir", str(folder / "hand" / str(index))],
                       cwd=folder / "src", env=env, check=True, capture_output=True)
        took.append(time.perf_counter() - started)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--concurrent", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlspec-bench-sweep-") as tmp:
        folder = Path(tmp) / "sweep"
        _spec(folder, args.trials, args.concurrent)
        env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(REPO)}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mlspec.cli.main", "up", str(folder), "--yes"], env=env, check=True,
                       capture_output=True)
        sweep_s = time.perf_counter() - started
        runs = _child_runs(folder)
        assert len(runs) == args.trials, f"{len(runs)} trials ran"
        params = [dict(r.data.params) for r in runs]
        in_mlspec = [(r.info.end_time - r.info.start_time) / 1000 for r in runs]
        bare = _by_hand(folder, params, tracked=False)
        tracked = _by_hand(folder, params, tracked=True)
        subprocess.run([sys.executable, "-m", "mlspec.cli.main", "down", str(folder), "--yes"], env=env,
                       capture_output=True)
    per_min = args.trials / sweep_s * 60
    rows = [("mlspec up, sweep", sweep_s, per_min),
            ("by hand, bare script", sum(bare), args.trials / sum(bare) * 60),
            ("by hand, logging to MLflow", sum(tracked), args.trials / sum(tracked) * 60)]
    print(f"{args.trials} trials, max_concurrent_trials {args.concurrent}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")
    for name, seconds, rate in rows:
        print(f"  {name:<28} {seconds:7.1f} s  {rate:6.1f} trials/min")
    for name, seconds, _ in rows[1:]:
        speedup = seconds / sweep_s
        verdict = "meets" if speedup >= TARGET_SPEEDUP else "misses"
        print(f"  speed-up against {name[9:]:<21} {speedup:5.2f}x  (target >= {TARGET_SPEEDUP}x: {verdict})")
    overhead = [m - h for m, h in zip(in_mlspec, tracked, strict=True)]
    fixed = sweep_s - sum(in_mlspec) / args.concurrent
    print(f"  per trial: {statistics.median(in_mlspec):.2f} s in mlspec (MLflow child run, start to end) against "
          f"{statistics.median(tracked):.2f} s by hand with MLflow, {statistics.median(bare):.2f} s bare")
    print(f"  overhead per trial (median, against by hand with MLflow): {statistics.median(overhead):+.2f} s; "
          f"against the bare script: {statistics.median(in_mlspec) - statistics.median(bare):+.2f} s")
    print(f"  outside the trials (plan, study, parent run, registration; wall minus trial time / concurrency): "
          f"{fixed:.1f} s")


if __name__ == "__main__":
    main()

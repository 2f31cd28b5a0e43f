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


def _sweep(root: Path, name: str, trials: int, concurrent: int) -> tuple[Path, float]:
    """A copy of the example brought up with `mlspec up` (then down); the folder and the up's wall time."""
    folder = root / name
    _spec(folder, trials, concurrent)
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mlspec.cli.main", "up", str(folder), "--yes"], env=env, check=True,
                   capture_output=True)
    took = time.perf_counter() - started
    subprocess.run([sys.executable, "-m", "mlspec.cli.main", "down", str(folder), "--yes"], env=env,
                   capture_output=True)
    return folder, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--concurrent", type=int, default=2)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mlspec-bench-sweep-") as tmp:
        folder, sweep_s = _sweep(Path(tmp), "sweep", args.trials, args.concurrent)
        runs = _child_runs(folder)
        assert len(runs) == args.trials, f"{len(runs)} trials ran"
        params = [dict(r.data.params) for r in runs]
        bare = _by_hand(folder, params, tracked=False)
        tracked = _by_hand(folder, params, tracked=True)
        # The same sweep one trial at a time: what mlspec adds per trial, without two trials sharing the cores.
        _, serial_s = _sweep(Path(tmp), "serial", args.trials, 1)
    rows = [(f"mlspec up, {args.concurrent} at once", sweep_s), ("mlspec up, one at a time", serial_s),
            ("by hand, bare script", sum(bare)), ("by hand, logging to MLflow", sum(tracked))]
    print(f"{args.trials} trials of examples/sweep (its sampling, no early termination), {os.cpu_count()} "
          f"cores, load {load:.1f} at the start")
    for name, seconds in rows:
        print(f"  {name:<28} {seconds:7.1f} s  {args.trials / seconds * 60:6.1f} trials/min")
    for name, seconds in rows[2:]:
        speedup = seconds / sweep_s
        verdict = "meets" if speedup >= TARGET_SPEEDUP else "misses"
        print(f"  {args.concurrent} at once against {name:<27} {speedup:5.2f}x  (target >= {TARGET_SPEEDUP}x: "
              f"{verdict})")
    print(f"  against mlspec one at a time: {serial_s / sweep_s:.2f}x")
    print(f"  overhead per trial (one at a time, against by hand with MLflow; plan, study, parent run and "
          f"registration included): {(serial_s - sum(tracked)) / args.trials:+.2f} s; against the bare script "
          f"(MLflow's client in the trial included): {(serial_s - sum(bare)) / args.trials:+.2f} s")
    print(f"  a trial by hand (median): {statistics.median(tracked):.2f} s with MLflow, "
          f"{statistics.median(bare):.2f} s bare")


if __name__ == "__main__":
    main()

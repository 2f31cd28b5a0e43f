"""`mlspec runs --leaderboard JOB`: an AutoML job's candidates (its latest run's child runs), best first."""

from __future__ import annotations

import argparse
import math
from typing import Any

from mlspec.cli.common import CommandError
from mlspec.cli.output import EXIT_FAILED, EXIT_OK, print_json

# The tags an AutoML run writes (mlspec.runtime.automl): repeated here so that reading runs imports no search code.
METRIC_TAG = "mlspec.automl.metric"
GOAL_TAG = "mlspec.automl.goal"
BEST_RUN_TAG = "mlspec.automl.best_run"
ALGORITHM_TAG = "mlspec.automl.algorithm"
PARAMS_SHOWN = 4  # hyperparameters per line; --json has them all


def latest_automl_run(client: Any, job: str) -> Any | None:
    """The job's most recent AutoML run (not one of its candidates)."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return None
    wanted = f"tags.`mlspec.job` = '{job}' and tags.`{METRIC_TAG}` LIKE '%'"
    found = client.search_runs(experiments, filter_string=wanted, order_by=["attributes.start_time DESC"],
                               max_results=20)
    return next((r for r in found if METRIC_TAG in r.data.tags and "mlflow.parentRunId" not in r.data.tags), None)


def ranked(client: Any, parent: Any) -> list[dict[str, Any]]:
    """The parent's child runs as rows, best value of its primary metric first; candidates without one last."""
    metric = parent.data.tags[METRIC_TAG]
    maximize = parent.data.tags.get(GOAL_TAG, "maximize") == "maximize"
    children = []
    token = None
    while True:  # every candidate: a search may evaluate thousands
        page = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
                                  max_results=1000, page_token=token)
        children += list(page)
        token = page.token
        if not token:
            break

    best = parent.data.tags.get(BEST_RUN_TAG)

    def key(run: Any) -> tuple[int, float, bool, int]:
        value = run.data.metrics.get(metric)
        if value is None or math.isnan(value):
            return (1, 0.0, True, run.info.start_time)
        # Among equal values the registered candidate first, then the earliest: FLAML keeps the first it found.
        return (0, -value if maximize else value, run.info.run_id != best, run.info.start_time)

    rows = []
    for rank, run in enumerate(sorted(children, key=key), start=1):
        params = {k: v for k, v in run.data.params.items() if k not in ("learner", "algorithm")}
        rows.append({"rank": rank, "run_id": run.info.run_id, "algorithm": run.data.tags.get(ALGORITHM_TAG),
                     "metric": metric, "value": run.data.metrics.get(metric),
                     "trial_time_s": run.data.metrics.get("trial_time_s"), "params": params,
                     "selected": run.info.run_id == best})
    return rows


def leaderboard(args: argparse.Namespace, client: Any) -> int:
    parent = latest_automl_run(client, args.leaderboard) if client is not None else None
    if parent is None:
        raise CommandError(f"no AutoML run of job '{args.leaderboard}' yet: `mlspec up` runs it", EXIT_FAILED)
    rows = ranked(client, parent)
    shown = rows[:args.limit] if args.limit else rows
    if args.json:
        print_json({"job": args.leaderboard, "run_id": parent.info.run_id, "metric": parent.data.tags[METRIC_TAG],
                    "goal": parent.data.tags.get(GOAL_TAG), "candidates": len(rows), "leaderboard": shown})
        return EXIT_OK
    metric = parent.data.tags[METRIC_TAG]
    print(f"{'rank':>4}  {'algorithm':<20} {metric:>14}  {'train s':>8}  run           hyperparameters")
    for row in shown:
        value = "-" if row["value"] is None else f"{row['value']:.6g}"
        took = "-" if row["trial_time_s"] is None else f"{row['trial_time_s']:.3g}"
        params = ", ".join(f"{k}={v}" for k, v in list(row["params"].items())[:PARAMS_SHOWN])
        mark = "*" if row["selected"] else " "
        print(f"{row['rank']:>4}{mark} {row['algorithm'] or '?':<20} {value:>14}  {took:>8}  {row['run_id'][:12]}  "
              f"{params}")
    print(f"\n{len(shown)} of {len(rows)} candidate(s) of run {parent.info.run_id} (* the registered pipeline)")
    return EXIT_OK

"""Sweeps locally: the study in the workspace (`sweeps/<job>/<hash>/optuna.db`), trials as training runs."""

from __future__ import annotations

from typing import Any

from mlspec.backends.local.context import Context, StepFailed
from mlspec.backends.local.handlers.model_versions import record_registered
from mlspec.graph import Node
from mlspec.runtime.jobrun import JobRun
from mlspec.spec.sweep import SweepJob


def apply_sweep(ctx: Context, node: Node, template: JobRun) -> dict[str, Any]:
    from mlspec.runtime.sweep.contract import sweep_seed
    from mlspec.runtime.sweep.runner import SweepTrials, run_sweep

    sweep = node.resource
    assert isinstance(sweep, SweepJob)
    folder = (ctx.paths.root / "sweeps" / sweep.name / node.hash[:16]).resolve()
    # Seeded by the content hash: the same sweep asks for the same parameters, a changed one for others.
    trials = SweepTrials(sweep=sweep, template=template, folder=folder, storage=folder / "optuna.db",
                         seed=sweep_seed(node.hash))
    result = run_sweep(trials, on_line=lambda line: ctx.say(f"[{sweep.name}] {line}"), stop=ctx.stop)
    if result.status != "succeeded":
        raise StepFailed(f"job '{sweep.name}': {result.error} (MLflow run {result.run_id}; trial logs under "
                         f"{folder})")
    for m in result.models:
        record_registered(ctx, m.name, int(m.version), m.sha256, m.run_id or result.run_id, reused=m.reused)
    return {"run_id": result.run_id, "models": {m.name: int(m.version) for m in result.models},
            "model_runs": {m.name: m.run_id or result.run_id for m in result.models},
            "best_trial": result.best_trial, "best_value": result.best_value,
            "best_params": {k: v if isinstance(v, (bool, int, float, str)) else str(v)
                            for k, v in result.best_params.items()},
            "trials": result.finished, "stopped_early": result.stopped_early, "study": str(trials.storage)}

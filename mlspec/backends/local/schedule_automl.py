"""A scheduled AutoML job: what `up` arms (its resolved search) and what each of its runs runs: a new search, on a
fresh copy of the training data's source, whose best pipeline is registered as a new version when it differs."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from mlspec.backends.local.context import Context
from mlspec.backends.local.fire import Outcome, run_marks, snapshot_source
from mlspec.backends.local.schedule_arm import data_sources
from mlspec.backends.local.state import StateStore
from mlspec.graph import Node
from mlspec.spec.schedule import SCHEDULED_TAG


def automl_launch(ctx: Context, node: Node) -> dict[str, Any]:
    """What a scheduled run of the AutoML job runs, as JSON."""
    from mlspec.backends.local.handlers.automl import automl_run

    run = automl_run(ctx, node, fresh=False)  # the search `up` just ran keeps its folder
    return {"kind": "automl", "run": run.model_dump(mode="json"),
            "sources": data_sources(ctx, node, {"data": "training_data"})}


def fire_automl(launch: dict[str, Any], folder: Path, resource_id: str, run: int, workspace: str,
                store: StateStore, stop: threading.Event) -> Outcome:
    from mlspec.runtime.automl.contract import AutoMLRun
    from mlspec.runtime.automl.runner import run_automl

    template = AutoMLRun.model_validate(launch["run"])
    update: dict[str, Any] = {
        "workdir": str(folder), "env": {**template.env, **run_marks(resource_id, workspace)},
        "tags": {**template.tags, SCHEDULED_TAG: "true", "mlspec.schedule.run": str(run)},
        # Seeded anew each run, as a scheduled sweep is: a run searches afresh rather than replaying the last.
        "seed": (template.seed + run) % 2**31,
        "outputs": {name: output.model_copy(update={"path": str(folder / "outputs" / name)})
                    for name, output in template.outputs.items()}}
    if "data" in launch.get("sources", {}):
        update["data"] = snapshot_source(launch["sources"]["data"], folder / "data")
    contract = template.model_copy(update=update)
    result = run_automl(contract, on_line=print, stop=stop)
    return result.status, result.run_id, result.error, list(result.models)

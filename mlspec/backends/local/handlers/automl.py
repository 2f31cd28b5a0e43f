"""AutoML jobs locally: FLAML searches as processes of mlspec's interpreter under the job's MLflow run, the best
pipeline registered (`runs/<job>/<hash>/search-N/` holds each search's log, candidates and pipeline)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from mlspec.backends.local.capacity import node_limits
from mlspec.backends.local.context import Context, StepFailed
from mlspec.backends.local.handlers.job import _outputs
from mlspec.backends.local.handlers.model_versions import record_registered
from mlspec.backends.local.processes import up_process_env
from mlspec.graph import Node
from mlspec.resolve.automl import remaining
from mlspec.spec.automl import AutoMLJob
from mlspec.spec.compute import ComputeBase


def automl_run(ctx: Context, node: Node, fresh: bool = True) -> Any:
    """The job's run contract; `fresh`: its run folder is emptied first (an interrupted search is not resumed)."""
    from mlspec.runtime.automl.contract import AutoMLRun, search_settings
    from mlspec.runtime.labels import label_tags

    job = node.resource
    assert isinstance(job, AutoMLJob)
    run_dir = ctx.paths.run_dir(job.name, node.hash).resolve()
    if fresh:  # a re-run starts clean
        shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    data_id = ctx.target(node.id, "training_data")
    assert data_id is not None
    compute_id = ctx.target(node.id, "compute")
    compute = ctx.graph.spec.get(compute_id) if compute_id else None
    cpus = node_limits(compute.resources).get("cpus") if isinstance(compute, ComputeBase) else None
    return AutoMLRun(
        job=job.name, experiment=job.experiment_name or ctx.graph.spec.workspace.name,
        tracking_uri=ctx.tracking_uri, artifact_location=str(ctx.paths.artifacts.resolve()), workdir=str(run_dir),
        content_hash=node.hash,
        tags={**label_tags(job.tags, job.description), "mlspec.workspace": ctx.graph.spec.workspace.name},
        # Marks the searches as this workspace's and this `up`'s, as a command job's processes are.
        env=up_process_env(str(ctx.paths.root.resolve()), node.id),
        data=ctx.outputs(data_id)["path"], **search_settings(job, remaining(job), node.hash),
        cpus=max(1, math.ceil(cpus or 1)),
        outputs=_outputs(ctx, node, job, str(run_dir)))


def apply_automl(ctx: Context, node: Node) -> dict[str, Any]:
    from mlspec.runtime.automl.runner import LOG_FILE, run_automl

    job = node.resource
    assert isinstance(job, AutoMLJob)
    run = automl_run(ctx, node)
    result = run_automl(run, on_line=lambda line: ctx.say(f"[{job.name}] {line}"), stop=ctx.stop)
    if result.status != "succeeded":
        raise StepFailed(f"job '{job.name}': {result.error} (MLflow run {result.run_id}; search logs under "
                         f"{run.workdir})")
    for m in result.models:
        record_registered(ctx, m.name, int(m.version), m.sha256, m.run_id or result.run_id, reused=m.reused)
    return {"run_id": result.run_id, "log": str(Path(run.workdir) / LOG_FILE),
            "models": {m.name: int(m.version) for m in result.models},
            "model_runs": {m.name: m.run_id or result.run_id for m in result.models},
            "best_algorithm": result.best_algorithm, "best_value": result.best_value, "best_run": result.best_run,
            "primary_metric": job.metric, "candidates": result.candidates, "cores_used": result.cores_used}

"""Jobs locally: snapshot the code, run the command under an MLflow run, register model outputs."""

from __future__ import annotations

import shutil
from typing import Any

from mlspec.backends.local.capacity import node_limits
from mlspec.backends.local.context import Context, StepFailed
from mlspec.backends.local.handlers.model_versions import record_registered
from mlspec.backends.local.lineage import run_lineage_tags
from mlspec.backends.local.processes import interpreter_bin, up_process_env
from mlspec.graph import Node
from mlspec.graph.digest import IGNORED_DIRS
from mlspec.plan import Record
from mlspec.spec import Model
from mlspec.spec.automl import MODEL_JOBS, AutoMLJob, ModelJob
from mlspec.spec.compute import ComputeBase
from mlspec.spec.job import PathInput
from mlspec.spec.pipeline import PipelineJob
from mlspec.spec.sweep import JOB_MODELS, AnyJob, SweepJob, trial_field


def _inputs(ctx: Context, node: Node, job: AnyJob) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, value in job.inputs.items():
        target = ctx.target(node.id, f"inputs.{name}")
        if target and target.startswith("data/"):
            out[name] = {"path": ctx.outputs(target)["path"]}
        elif target and target.startswith("model/"):
            out[name] = {"value": f"models:/{value.split(':', 1)[1]}"}  # type: ignore[union-attr]
        elif isinstance(value, PathInput):
            out[name] = {"path": str(ctx.graph.spec.files[node.id][f"inputs.{name}"])}
        else:
            out[name] = {"value": value}
    return out


def _outputs(ctx: Context, node: Node, job: ModelJob, workdir: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, output in job.outputs.items():
        entry: dict[str, Any] = {"path": f"{workdir}/outputs/{name}", "type": output.type,
                                 "register_as": output.register_as, "flavor": output.flavor,
                                 "loader": None, "aliases": []}
        model_id = f"model/{output.register_as}" if output.register_as else None
        if model_id and model_id in ctx.graph.nodes:
            model = ctx.graph.nodes[model_id].resource
            assert isinstance(model, Model)
            entry.update(flavor=output.flavor or model.flavor, loader=model.loader, aliases=list(model.aliases),
                         signature=model.signature.model_dump() if model.signature else None)
        out[name] = entry
    return out


def _snapshot(ctx: Context, node: Node, workdir: str, field: str = "code") -> str | None:
    code = ctx.graph.spec.files.get(node.id, {}).get(field)
    if code is None:
        return None
    target = f"{workdir}/code"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(code, target, ignore=shutil.ignore_patterns(*IGNORED_DIRS, "*.pyc"))
    return target


def _launch(ctx: Context, node: Node, job: AnyJob) -> dict[str, Any]:
    """How many nodes, under which launcher, with which share of this machine (the compute's explicit limits)."""
    compute_id = ctx.target(node.id, "compute")
    compute = ctx.graph.spec.get(compute_id) if compute_id else None
    limits = node_limits(compute.resources) if isinstance(compute, ComputeBase) else {}
    if isinstance(job, SweepJob):  # each trial is one process tree with a node's share
        return {"nodes": 1, "limits": limits, "distribution": None, "processes_per_node": 1}
    distribution = job.distribution
    return {"nodes": job.resources.instance_count, "limits": limits,
            "distribution": distribution.type if distribution else None,
            "processes_per_node": distribution.process_count_per_instance if distribution else 1}


def job_run(ctx: Context, node: Node, fresh: bool = True) -> Any:
    """The job's run contract; `fresh`: a command job's run folder is emptied first (a retry starts clean)."""
    from mlspec.runtime.jobrun import JobRun
    from mlspec.runtime.labels import label_tags

    job = node.resource
    assert isinstance(job, JOB_MODELS)
    runs = job.trial if isinstance(job, SweepJob) else job  # a sweep's trial holds the command job's fields
    run_dir = ctx.paths.run_dir(job.name, node.hash).resolve()
    if fresh and not isinstance(job, SweepJob):  # a sweep resumes: its finished trials' outputs are kept
        shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    workdir = str(run_dir)
    env_id = ctx.target(node.id, trial_field(job, "environment"))
    env_outputs = ctx.outputs(env_id) if env_id else {}
    env_vars = dict(runs.environment_variables)
    if env_id:
        env_vars = {**ctx.node(env_id).resource.environment_variables, **env_vars}  # type: ignore[attr-defined]
    # Marks the job's whole process tree as this workspace's and this `up`'s: once this `up` is gone, a later
    # one (or `down`) may stop what is left; the supervisor never does.
    env_vars.update(up_process_env(str(ctx.paths.root.resolve()), node.id))
    # The job's `python` is the environment's, or (no requirements) the interpreter mlspec runs with, never
    # whichever `python` happens to be first on the PATH mlspec was started with.
    bin_folder = env_outputs.get("bin") or interpreter_bin(ctx.paths.interpreters.resolve())
    return JobRun(
        job=job.name, experiment=job.experiment_name or ctx.graph.spec.workspace.name,
        tracking_uri=ctx.tracking_uri, artifact_location=str(ctx.paths.artifacts.resolve()),
        command=runs.command, code=_snapshot(ctx, node, workdir, trial_field(job, "code")), workdir=workdir,
        inputs=_inputs(ctx, node, job), outputs=_outputs(ctx, node, job, workdir), env=env_vars,
        path_prefix=bin_folder, timeout=None if isinstance(job, SweepJob) else job.timeout,
        retries=0 if isinstance(job, SweepJob) else job.retries,
        log_file=f"{workdir}/job.log", tags={**label_tags(job.tags, job.description), "mlspec.job": job.name,
                                             "mlspec.hash": node.hash,
                                             "mlspec.workspace": ctx.graph.spec.workspace.name,
                                             **run_lineage_tags(ctx, node, trial_field(job, "code"), env_id)},
        content_hash=node.hash, **_launch(ctx, node, job))


def _adopt(ctx: Context, node: Node, job: ModelJob) -> dict[str, Any] | None:
    """Models an earlier, interrupted apply already registered for this exact job hash: reuse, never retrain."""
    names = [o.register_as for o in job.outputs.values() if o.register_as]
    if not names:
        return None
    from mlspec.runtime.serving.integrity import TAG
    from mlspec.runtime.tracking import client

    found: dict[str, int] = {}
    run_id = None
    for name in names:
        versions = client(ctx.tracking_uri).search_model_versions(f"name='{name}' and tag.`mlspec.hash`='{node.hash}'")
        if not versions:
            return None
        best = max(versions, key=lambda v: int(v.version))
        found[name] = int(best.version)
        run_id = best.run_id
        if best.tags.get(TAG):  # registered by this job's run an instant before the apply was interrupted
            record_registered(ctx, name, int(best.version), best.tags[TAG], best.run_id, reused=True)
    return {"run_id": run_id, "models": found, "adopted": True}


def apply(ctx: Context, node: Node) -> dict[str, Any]:
    if isinstance(node.resource, PipelineJob):
        from mlspec.backends.local.handlers.pipeline import apply_pipeline

        return apply_pipeline(ctx, node)
    job = node.resource
    assert isinstance(job, MODEL_JOBS)
    adopted = _adopt(ctx, node, job)
    if adopted:
        ctx.say(f"[{job.name}] reusing model versions already registered for this job: {adopted['models']}")
        return adopted
    if isinstance(job, AutoMLJob):
        from mlspec.backends.local.handlers.automl import apply_automl

        return apply_automl(ctx, node)
    if isinstance(job, SweepJob):
        from mlspec.backends.local.handlers.sweep import apply_sweep

        return apply_sweep(ctx, node, job_run(ctx, node))
    from mlspec.runtime.train import run_job

    run = job_run(ctx, node)
    result = run_job(run, on_line=lambda line: ctx.say(f"[{job.name}] {line}"), stop=ctx.stop)
    if result.status != "succeeded":
        tail = "\n".join(f"    {line}" for line in result.log_tail[-10:])
        raise StepFailed(f"job '{job.name}': {result.error} (MLflow run {result.run_id}, "
                         f"{result.attempts} attempt(s)); last lines:\n{tail}\n  full log: {run.log_path}")
    for m in result.models:
        record_registered(ctx, m.name, int(m.version), m.sha256, m.run_id or result.run_id,
                          reused=m.reused)
    # The run behind each version: this one's, or an earlier one's whose version the same files reused.
    return {"run_id": result.run_id, "models": {m.name: int(m.version) for m in result.models},
            "model_runs": {m.name: m.run_id or result.run_id for m in result.models},
            "duration_s": round(result.duration_s, 2), "log": run.log_path}


def delete(ctx: Context, record: Record, purge: bool) -> None:
    if purge:
        name = record.id.split("/", 1)[1]
        shutil.rmtree(ctx.paths.root / "runs" / name, ignore_errors=True)
        shutil.rmtree(ctx.paths.root / "sweeps" / name, ignore_errors=True)  # a sweep's studies and trials

"""Batch endpoints locally: score the Data input with the model in a process, each time the endpoint's hash changes."""

from __future__ import annotations

import contextlib
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from mlspec.backends.local.capacity import node_limits
from mlspec.backends.local.context import Context, StepFailed
from mlspec.backends.local.handlers.model_versions import recorded_digest, resolve_version
from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.processes import up_process_env
from mlspec.backends.local.supervisor_start import python_command
from mlspec.graph import Node
from mlspec.plan import Record
from mlspec.spec import BatchEndpoint, ModelRef
from mlspec.spec.compute import ClusterCompute, ComputeBase


def output_folder(ctx: Context, endpoint: BatchEndpoint) -> Path:
    """`output.path` as the field says: relative to the spec's folder (an absolute path is taken as it is)."""
    path = Path(endpoint.output.path).expanduser()
    return (path if path.is_absolute() else ctx.graph.spec.root / path).resolve()


def _nodes(ctx: Context, node: Node) -> int:
    compute_id = ctx.target(node.id, "compute")
    compute = ctx.node(compute_id).resource if compute_id and compute_id in ctx.graph.nodes else None
    return compute.max_nodes if isinstance(compute, ClusterCompute) else 1


def _limits(ctx: Context, node: Node) -> dict[str, Any]:
    """The compute's explicit limits for the one process that scores on behalf of all its nodes: the cores and
    memory of every node together, the GPUs of one (which its threads share)."""
    compute_id = ctx.target(node.id, "compute")
    compute = ctx.graph.spec.get(compute_id) if compute_id else None
    limits = node_limits(compute.resources) if isinstance(compute, ComputeBase) else {}
    nodes = _nodes(ctx, node)
    return {name: value * nodes if name in ("cpus", "memory") else value for name, value in limits.items()}


def work_dir(paths: WorkspacePaths, name: str) -> Path:
    """A batch endpoint's run files: its BatchRun, result and log (`batch.log`, which `mlspec logs` shows)."""
    return (paths.root / "batch" / name).resolve()


def log_file(paths: WorkspacePaths, name: str) -> Path:
    return work_dir(paths, name) / "batch.log"


def apply(ctx: Context, node: Node) -> dict[str, Any]:
    from mlspec.runtime.batch.contract import BatchResult
    from mlspec.runtime.execute import run_command

    endpoint = node.resource
    assert isinstance(endpoint, BatchEndpoint)
    run, process, _ = scoring_run(ctx, node)
    spec_file, result_file = work_dir(ctx.paths, node.name) / "batchrun.json", work_dir(ctx.paths, node.name) / \
        "result.json"
    run.dump(spec_file)
    result_file.unlink(missing_ok=True)
    name, version = run.model_uri.removeprefix("models:/").rsplit("/", 1)
    ctx.say(f"[{node.name}] scoring {endpoint.input} with {name} version {version} into {run.output}")
    execution = run_command(process, None, stop=ctx.stop, on_line=lambda line: ctx.say(line if line.startswith("[") else
                                                                         f"[{node.name}] {line}"))
    result = BatchResult.model_validate_json(result_file.read_text()) if result_file.exists() else None
    if result is None or result.status != "succeeded":
        reason = result.error if result else f"the batch scorer exited with code {execution.exit_code}"
        tail = "\n".join(f"    {line}" for line in execution.log_tail[-10:])
        raise StepFailed(f"batch endpoint '{node.name}': {reason}; last lines:\n{tail}\n  full log: "
                         f"{process.log_path}")
    return {"output": run.output, "files": result.outputs, "rows_scored": result.rows_scored,
            "rows_failed": result.rows_failed, "duration_s": result.duration_s, "model": name,
            "version": int(version), "model_sha256": result.model_sha256,
            "log": process.log_path}


def scorer_command(python: str, spec_file: Path, result_file: Path) -> str:
    """The batch scorer's command line, run with -P in its own folder: no file where `mlspec up` was started
    can shadow a module it imports."""
    return " ".join(shlex.quote(a) for a in python_command("mlspec.runtime.batch", str(spec_file), "--result",
                                                            str(result_file), python=python))


def scoring_run(ctx: Context, node: Node) -> tuple[Any, Any, str]:
    """The scoring run's contract, the process that runs it (the job runner's process handling: own process group,
    line-by-line log, stopped with whatever it started) and the Python it runs with."""
    from mlspec.runtime.batch.contract import BatchRun
    from mlspec.runtime.jobrun import JobRun

    endpoint = node.resource
    assert isinstance(endpoint, BatchEndpoint)
    data_id = ctx.target(node.id, "input")
    data_path = ctx.outputs(data_id).get("path") if data_id else None
    if not data_path:
        raise StepFailed(f"batch endpoint '{node.name}': input {endpoint.input} has not been materialised")
    output = output_folder(ctx, endpoint)
    source = ctx.graph.spec.files.get(data_id, {}).get("path") if data_id else None
    for inside in (Path(data_path), *([source.resolve()] if source else [])):
        if output == inside or output.is_relative_to(inside) or inside.is_relative_to(output):
            # Predictions inside the data would change its version, and so re-score on every `up`.
            raise StepFailed(f"batch endpoint '{node.name}': output.path {endpoint.output.path} overlaps its "
                             f"input {endpoint.input} ({inside}); choose a folder outside the data")
    version = resolve_version(ctx, endpoint.model, f"batch endpoint '{node.name}'")
    ref = ModelRef.parse(endpoint.model)
    env_id = ctx.target(node.id, "environment")
    python = str(ctx.outputs(env_id).get("python") or sys.executable) if env_id else sys.executable
    work = work_dir(ctx.paths, node.name)
    work.mkdir(parents=True, exist_ok=True)
    run = BatchRun(endpoint=node.name, model_uri=f"models:/{ref.name}/{version}", tracking_uri=ctx.tracking_uri,
                   input=str(Path(data_path).resolve()), output=str(output), mode=endpoint.output.mode,
                   mini_batch_size=endpoint.mini_batch_size, error_threshold=endpoint.error_threshold,
                   max_retries=endpoint.retry_settings.max_retries, timeout=endpoint.retry_settings.timeout,
                   max_concurrency=endpoint.max_concurrency, nodes=_nodes(ctx, node),
                   sha256=recorded_digest(ctx, ref.name, version), **_scoring(ctx, node, endpoint))
    spec_file, result_file = work / "batchrun.json", work / "result.json"
    env: dict[str, str] = {}
    if env_id:
        env.update(ctx.node(env_id).resource.environment_variables)  # type: ignore[attr-defined]
    env.update(up_process_env(str(ctx.paths.root.resolve()), node.id))  # owned by this `up`, stopped with it
    process = JobRun(
        job=node.name, experiment="batch", tracking_uri=ctx.tracking_uri, artifact_location=str(work),
        command=scorer_command(python, spec_file, result_file), code=str(work), workdir=str(work), env=env,
        log_file=str(log_file(ctx.paths, node.name)), limits=_limits(ctx, node))
    return run, process, python


def _scoring(ctx: Context, node: Node, endpoint: BatchEndpoint) -> dict[str, str]:
    """The run's scoring script: its code folder as the spec has it (a run scores once, during `up`)."""
    code = ctx.graph.spec.files.get(node.id, {}).get("code_configuration.code")
    if endpoint.code_configuration is None or code is None:
        return {}
    return {"code": str(code.resolve()), "scoring_script": endpoint.code_configuration.scoring_script}


def delete(ctx: Context, record: Record, purge: bool) -> None:
    """The run's working files always go; the predictions stay unless purged, like a job's runs."""
    shutil.rmtree(work_dir(ctx.paths, record.id.split("/", 1)[1]), ignore_errors=True)
    if not purge:
        return
    from mlspec.runtime.batch.journal import STAGING
    from mlspec.runtime.batch.output import MANIFEST

    output = record.outputs.get("output")
    for name in record.outputs.get("files", []):
        Path(name).unlink(missing_ok=True)
    if output:
        shutil.rmtree(Path(output) / STAGING, ignore_errors=True)
        Path(output, MANIFEST).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            Path(output).rmdir()  # only when nothing else lives there

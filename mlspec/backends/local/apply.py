"""Walks a plan: independent steps in parallel within each compute's capacity; a failure stops its dependants."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlspec.backends.local.context import Context, StepFailed
from mlspec.backends.local.handlers import handler_for
from mlspec.backends.local.handlers.compute import compute_slots
from mlspec.backends.local.labels import apply_labels
from mlspec.backends.local.processes import stop_group, workspace_processes
from mlspec.backends.local.schedule_arm import rearm, wait_for_scheduled_run
from mlspec.backends.local.schedule_state import disarm, run_id_of
from mlspec.backends.local.supervisor_start import SupervisorFailed
from mlspec.graph import Node
from mlspec.plan import Change, Plan, Record, spec_of
from mlspec.plan.labels import RELABEL
from mlspec.plan.schedules import RESCHEDULE

IN_PLACE = (RELABEL, RESCHEDULE)  # updates that run nothing: labels or a schedule change in place

MAX_PARALLEL = 8


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # id -> message
    skipped: list[str] = field(default_factory=list)  # dependants of a failure
    durations: dict[str, float] = field(default_factory=dict)
    stopped: list[str] = field(default_factory=list)  # steps in flight when the apply was interrupted
    not_started: list[str] = field(default_factory=list)  # steps an interrupted apply never began

    @property
    def ok(self) -> bool:
        return not self.failed


class Interrupted(Exception):
    """Ctrl-C stopped an apply: the steps in flight were stopped and every completed step is recorded."""

    def __init__(self, outcome: Outcome):
        super().__init__("interrupted")
        self.outcome = outcome


class _Capacity:
    """One semaphore per compute: a cluster runs at most max_nodes jobs at once, local compute one (pipeline steps
    take theirs from the same semaphores)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def for_job(self, job_id: str) -> threading.Semaphore | None:
        compute = self.ctx.target(job_id, "compute")
        return compute_slots(self.ctx, compute) if compute is not None else None


def _run_step(ctx: Context, change: Change, slots: _Capacity) -> dict[str, Any]:
    node = ctx.node(change.id)
    # A relabel or a reschedule changes labels or the schedule only: nothing is retrained, rebuilt or restarted.
    if change.verb not in IN_PLACE and node.kind in ("Job", "Endpoint"):
        wait_for_scheduled_run(ctx, node)
    outputs = ctx.outputs(node.id) if change.verb in IN_PLACE else _apply(ctx, node, slots)
    applied = ctx.outputs(node.id).get("labels") or {}  # what the last apply labelled: what is gone is cleared
    outputs = {**outputs, "labels": apply_labels(ctx, node, outputs, applied)}
    if node.kind in ("Job", "Endpoint"):
        outputs.pop("schedule", None)
        schedule = rearm(ctx, node)
        if schedule is not None:
            outputs["schedule"] = schedule
    return outputs


def _apply(ctx: Context, node: Node, slots: _Capacity) -> dict[str, Any]:
    handler = handler_for(node.kind)
    semaphore = slots.for_job(node.id) if node.kind == "Job" else None
    if semaphore is None:
        return handler.apply(ctx, node)
    with semaphore:
        return handler.apply(ctx, node)


def _record(ctx: Context, change: Change, outputs: dict[str, Any], status: str) -> None:
    node = ctx.node(change.id)
    upstream = {dep: ctx.graph.nodes[dep].hash for dep in node.deps}
    record = Record(node.id, node.kind, node.hash, spec_of(node), node.files, upstream, outputs, status)
    ctx.store.put(record)  # recorded as soon as it completes: an interrupted apply resumes from here
    with ctx.lock:
        ctx.records[node.id] = record


def _record_failure(ctx: Context, change: Change, partial: dict[str, Any] | None = None) -> None:
    # A failed relabel leaves the resource as it was (ready, with the labels it had), so the next plan relabels
    # again instead of redoing the whole step. `partial`: what a failed step still made (a pipeline's finished steps).
    if change.verb not in IN_PLACE:
        _record(ctx, change, {**ctx.outputs(change.id), **(partial or {})}, "failed")


def apply_plan(ctx: Context, plan: Plan) -> Outcome:
    outcome = Outcome()
    steps = {c.id: c for c in plan.changes if c.action in ("create", "update", "replace")}
    pending = [rid for rid in ctx.graph.order if rid in steps]
    slots = _Capacity(ctx)
    running: dict[Future[dict[str, Any]], tuple[str, float]] = {}
    with ThreadPoolExecutor(max_workers=MAX_PARALLEL, thread_name_prefix="mlspec-step") as pool:
        try:
            while pending or running:
                for rid in list(pending):
                    deps = [d for d in ctx.node(rid).deps if d in steps]
                    if any(d in outcome.failed or d in outcome.skipped for d in deps):
                        pending.remove(rid)
                        outcome.skipped.append(rid)
                        ctx.say(f"  skip {rid}: an upstream step failed")
                    elif all(d in outcome.done for d in deps):
                        pending.remove(rid)
                        change = steps[rid]
                        ctx.say(f"  {_symbol(change)} {rid} ...")
                        running[pool.submit(_run_step, ctx, change, slots)] = (rid, time.monotonic())
                if not running:
                    continue
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    _finish(ctx, future, running.pop(future), steps, outcome)
        except KeyboardInterrupt:
            # Ctrl-C reaches this thread only. The steps in flight see `stop` (a job's processes are stopped and
            # its MLflow run ends KILLED); what completes meanwhile is recorded like any other step.
            ctx.stop.set()
            ctx.say(f"  interrupted: stopping {', '.join(rid for rid, _ in running.values()) or 'nothing'} "
                    "(Ctrl-C again to exit at once)")
            outcome.not_started = [rid for rid in pending if rid not in outcome.skipped]
            for future in running:
                future.cancel()  # one waiting for a compute's slot never starts
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    rid, started = running.pop(future)
                    if future.cancelled():
                        outcome.not_started.append(rid)
                    elif not _finish(ctx, future, (rid, started), steps, outcome):
                        outcome.failed.pop(rid, None)
                        outcome.stopped.append(rid)
            raise Interrupted(outcome) from None
    for change in plan.changes:
        if change.action == "delete":
            _delete(ctx, change, outcome)
    return outcome


def _finish(ctx: Context, future: Future[dict[str, Any]], step: tuple[str, float], steps: dict[str, Change],
            outcome: Outcome) -> bool:
    """Record a finished step's result in the state and the outcome; False when it failed."""
    rid, started = step
    elapsed = time.monotonic() - started
    outcome.durations[rid] = elapsed
    try:
        outputs = future.result()
    except Exception as exc:  # StepFailed: the user's to fix; anything else: a bug or the environment
        message = str(exc) if isinstance(exc, StepFailed | SupervisorFailed) else f"{type(exc).__name__}: {exc}"
        outcome.failed[rid] = message
        _record_failure(ctx, steps[rid], exc.partial if isinstance(exc, StepFailed) else None)
        if not ctx.stop.is_set():
            ctx.say(f"  ✗ {rid} failed after {elapsed:.1f}s: {message}")
        return False
    _record(ctx, steps[rid], outputs, "ready")
    outcome.done.append(rid)
    detail = {RELABEL: "  relabelled", RESCHEDULE: "  rescheduled"}.get(steps[rid].verb) or _detail(outputs)
    ctx.say(f"  ✓ {rid} {elapsed:.1f}s{detail}")
    return True


def kill_step_processes(workspace: Path) -> list[int]:
    """SIGKILL every process an apply step started in this workspace (jobs, batch runs), sparing the servers the
    supervisor keeps: for a second Ctrl-C, which exits at once. Step ids are `kind/name`; supervised ones are
    longer (`endpoint/NAME/gateway`)."""
    killed = []
    for pid, process_id in workspace_processes(str(workspace.resolve())).items():
        if process_id.count("/") == 1:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return killed


def _delete(ctx: Context, change: Change, outcome: Outcome, purge: bool = False) -> None:
    record = ctx.records[change.id]
    try:
        with ctx.lock:
            disarm(ctx.store, change.id)  # no scheduled run of what is gone, and none left running
        for pid, process_id in workspace_processes(str(ctx.paths.root.resolve())).items():
            if process_id == run_id_of(change.id):
                stop_group(pid)
        if purge:  # the scheduled runs' folders go with the rest of what ran
            shutil.rmtree(ctx.paths.root / "schedules" / change.id.replace("/", "-"), ignore_errors=True)
        handler_for(record.kind).delete(ctx, record, purge)
    except Exception as exc:
        outcome.failed[change.id] = f"{type(exc).__name__}: {exc}"
        ctx.say(f"  ✗ delete {change.id}: {exc}")
        return
    ctx.store.remove(change.id)
    with ctx.lock:
        ctx.records.pop(change.id, None)
    outcome.done.append(change.id)
    ctx.say(f"  - {change.id} deleted")


def _symbol(change: Change) -> str:
    return {"create": "+", "update": "~", "replace": "-/+"}.get(change.action, " ")


def _detail(outputs: dict[str, Any]) -> str:
    if "url" in outputs:
        return f"  {outputs['url']}"
    if outputs.get("models"):
        return "  registered " + ", ".join(f"{n}:{v}" for n, v in outputs["models"].items())
    if "version" in outputs and isinstance(outputs["version"], int):
        return f"  version {outputs['version']}"
    return ""

"""Walks a plan: independent steps in parallel within each compute's capacity; a failure stops its dependants."""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from mlspec.backends.local.context import Context, StepFailed
from mlspec.backends.local.handlers import handler_for
from mlspec.backends.local.handlers.compute import capacity
from mlspec.backends.local.labels import apply_labels
from mlspec.graph import Node
from mlspec.plan import Change, Plan, Record, spec_of
from mlspec.plan.labels import RELABEL

MAX_PARALLEL = 8


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # id -> message
    skipped: list[str] = field(default_factory=list)  # dependants of a failure
    durations: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


class _Capacity:
    """One semaphore per compute: a cluster runs at most max_nodes jobs at once, local compute one."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.semaphores: dict[str, threading.Semaphore] = {}
        self.lock = threading.Lock()

    def for_job(self, job_id: str) -> threading.Semaphore | None:
        compute = self.ctx.target(job_id, "compute")
        if compute is None:
            return None
        with self.lock:
            if compute not in self.semaphores:
                self.semaphores[compute] = threading.Semaphore(capacity(self.ctx.node(compute)))
            return self.semaphores[compute]


def _run_step(ctx: Context, change: Change, slots: _Capacity) -> dict[str, Any]:
    node = ctx.node(change.id)
    # A relabel changes labels only: nothing is retrained, rebuilt or restarted.
    outputs = ctx.outputs(node.id) if change.verb == RELABEL else _apply(ctx, node, slots)
    applied = ctx.outputs(node.id).get("labels") or {}  # what the last apply labelled: what is gone is cleared
    return {**outputs, "labels": apply_labels(ctx, node, outputs, applied)}


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


def _record_failure(ctx: Context, change: Change) -> None:
    # A failed relabel leaves the resource as it was (ready, with the labels it had), so the next plan relabels
    # again instead of redoing the whole step.
    if change.verb != RELABEL:
        _record(ctx, change, ctx.outputs(change.id), "failed")


def apply_plan(ctx: Context, plan: Plan) -> Outcome:
    outcome = Outcome()
    steps = {c.id: c for c in plan.changes if c.action in ("create", "update", "replace")}
    pending = [rid for rid in ctx.graph.order if rid in steps]
    slots = _Capacity(ctx)
    running: dict[Future[dict[str, Any]], tuple[str, float]] = {}
    with ThreadPoolExecutor(max_workers=MAX_PARALLEL, thread_name_prefix="mlspec-step") as pool:
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
                rid, started = running.pop(future)
                elapsed = time.monotonic() - started
                outcome.durations[rid] = elapsed
                try:
                    outputs = future.result()
                except StepFailed as exc:
                    outcome.failed[rid] = str(exc)
                    _record_failure(ctx, steps[rid])
                    ctx.say(f"  ✗ {rid} failed after {elapsed:.1f}s: {exc}")
                    continue
                except Exception as exc:  # a bug or an environment problem: still finish the rest
                    outcome.failed[rid] = f"{type(exc).__name__}: {exc}"
                    _record_failure(ctx, steps[rid])
                    ctx.say(f"  ✗ {rid} failed after {elapsed:.1f}s: {type(exc).__name__}: {exc}")
                    continue
                _record(ctx, steps[rid], outputs, "ready")
                outcome.done.append(rid)
                detail = "  relabelled" if steps[rid].verb == RELABEL else _detail(outputs)
                ctx.say(f"  ✓ {rid} {elapsed:.1f}s{detail}")
    for change in plan.changes:
        if change.action == "delete":
            _delete(ctx, change, outcome)
    return outcome


def _delete(ctx: Context, change: Change, outcome: Outcome, purge: bool = False) -> None:
    record = ctx.records[change.id]
    try:
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

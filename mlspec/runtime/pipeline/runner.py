"""Run a pipeline: steps in dependency order, independent ones at once up to their compute's capacity, each an MLflow
child run of the pipeline's run; a step whose hash (its content and the digests of what it reads) is unchanged is
reused from the workspace instead of run again."""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlspec.runtime import tracking
from mlspec.runtime.execute import LineCallback
from mlspec.runtime.jobrun import InputBinding, JobRun
from mlspec.runtime.pipeline import cache
from mlspec.runtime.pipeline.contract import PipelineRun, StepRun
from mlspec.runtime.pipeline.slots import CountedSlots, Slots

StepStatus = Literal["succeeded", "reused", "failed", "skipped", "not_started", "cancelled"]


@dataclass
class StepResult:
    status: StepStatus
    hash: str = ""
    run_id: str | None = None
    error: str | None = None
    paths: dict[str, str] = field(default_factory=dict)  # output -> where it is
    digests: dict[str, str] = field(default_factory=dict)  # output -> content digest
    models: list[dict[str, Any]] = field(default_factory=list)  # name, version, sha256, run_id
    log: str | None = None  # the step's log (a sweep step's trials keep theirs in trial-N/)


@dataclass
class PipelineResult:
    status: Literal["succeeded", "failed", "cancelled"]
    run_id: str | None = None
    steps: dict[str, StepResult] = field(default_factory=dict)
    error: str | None = None


class _Pipeline:
    def __init__(self, plan: PipelineRun, say: LineCallback, stop: threading.Event, slots: Slots | None) -> None:
        self.plan, self.say, self.stop = plan, say, stop
        self.results: dict[str, StepResult] = {}
        self.running: dict[str, threading.Thread] = {}
        self.slots: Slots = slots or CountedSlots(plan.capacity)
        self.untracked: set[str] = set()  # steps whose earlier run is gone from MLflow: said once
        self.woken = threading.Event()
        self.lock = threading.Lock()

    def step_folder(self, step: StepRun, run_hash: str) -> Path:
        return Path(self.plan.folder) / "steps" / step.name / run_hash[:16]

    def run(self) -> PipelineResult:
        plan = self.plan
        experiment = tracking.ensure_experiment(plan.tracking_uri, plan.experiment, plan.artifact_location)
        tags = {**plan.tags, "mlspec.job": plan.name, "mlspec.hash": plan.content_hash, "mlspec.pipeline": plan.name,
                "mlflow.source.type": "JOB", "mlflow.source.name": plan.name}
        parent = tracking.start_run(plan.tracking_uri, experiment, tags, run_name=plan.name)
        result = PipelineResult(status="failed", run_id=parent)
        try:
            self._loop(parent)
        finally:
            result.steps = {s.name: self.results.get(s.name) or StepResult("not_started") for s in plan.steps}
            self._end(parent, result)
        return result

    def _loop(self, parent: str) -> None:
        pending = list(self.plan.steps)
        while pending or self.running:
            before = len(pending)
            failed = any(r.status in ("failed", "cancelled") for r in self.results.values())
            halted = self.stop.is_set() or (failed and not self.plan.continue_on_step_failure)
            for step in list(pending):
                upstream = [self.results.get(d) for d in step.deps]
                if halted:
                    pending.remove(step)  # reported as not started
                elif any(u is not None and u.status in ("failed", "cancelled", "skipped") for u in upstream):
                    pending.remove(step)
                    self.results[step.name] = StepResult("skipped", error="an upstream step failed")
                    self.say(f"step {step.name} skipped: an upstream step failed")
                elif all(u is not None for u in upstream) and (self._reused(step) or
                                                               self.slots.take(step.compute, step.slots)):
                    pending.remove(step)
                    if step.name not in self.results:
                        self._start(step, parent)
            waiting = any(all(d in self.results for d in s.deps) for s in pending)  # for a compute's nodes
            if not self.running and not waiting:
                if len(pending) == before:  # nothing can ever start: never spin (an upstream left no result)
                    for step in pending:
                        self.results[step.name] = StepResult("skipped", error="its upstream steps did not finish")
                    return
                continue  # a reused step finished at once: its readers may start now
            self.woken.wait(0.5)
            self.woken.clear()
            for name, thread in list(self.running.items()):
                if not thread.is_alive():
                    del self.running[name]

    def _where(self, step: StepRun) -> tuple[str, Path]:
        """The step's hash at run time (its upstream outputs are known by now) and its folder."""
        reads = {name: self.results[up].digests[output] for name, (up, output) in step.reads.items()}
        run_hash = cache.run_hash(step.static_hash, reads)
        return run_hash, self.step_folder(step, run_hash)

    def _reused(self, step: StepRun) -> bool:
        """Whether the step finished before with this very hash (and is recorded so); it needs no node then."""
        run_hash, folder = self._where(step)
        found = cache.cached(folder)
        if found is not None and not self._still_tracked(found):
            if step.name not in self.untracked:
                self.untracked.add(step.name)
                self.say(f"step {step.name} runs again: its earlier run or a model version it registered is no "
                         "longer in the tracking store")
            found = None
        if found is not None:
            self.results[step.name] = StepResult("reused", run_hash, found.get("run_id"), paths=found["paths"],
                                                 digests=found["digests"], models=found.get("models", []),
                                                 log=_log(folder))
            self.say(f"step {step.name} reused (unchanged; run {str(found.get('run_id'))[:12]})")
            return True
        return False

    def _start(self, step: StepRun, parent: str) -> None:
        """Run the step in a thread of its own; its compute's nodes were taken for it."""
        run_hash, folder = self._where(step)
        self.say(f"step {step.name} started")

        def target() -> None:
            try:
                outcome = self._run_step(step, parent, run_hash, folder)
            except Exception as error:  # a bug or the environment: the step fails, the pipeline says why
                outcome = StepResult("failed", run_hash, error=f"{type(error).__name__}: {error}")
            outcome.log = _log(folder)
            self.slots.give(step.compute, step.slots)
            with self.lock:
                self.results[step.name] = outcome
            if outcome.status == "succeeded":
                self.say(f"step {step.name} succeeded (run {str(outcome.run_id)[:12]})")
            elif not self.stop.is_set():
                self.say(f"step {step.name} failed: {outcome.error}")
            self.woken.set()

        thread = threading.Thread(target=target, name=f"step-{step.name}", daemon=True)
        self.running[step.name] = thread
        thread.start()

    def _still_tracked(self, found: dict[str, Any]) -> bool:
        """Whether the run a finished step recorded, and the versions it registered, are still in MLflow: one
        deleted (or a store emptied) is made again by running the step, never reported as if it were there."""
        client = tracking.client(self.plan.tracking_uri)
        try:
            if found.get("run_id"):
                client.get_run(str(found["run_id"]))
            for model in found.get("models", []):
                version = client.get_model_version(model["name"], str(model["version"]))
                if version.run_id != model["run_id"]:
                    return False
        except Exception:  # MLflow's "not found", whatever its class
            return False
        return True

    def _run_step(self, step: StepRun, parent: str, run_hash: str, folder: Path) -> StepResult:
        if step.sweep is None:  # what an interrupted attempt left; a sweep resumes its study and finished trials
            shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        template = step.template
        inputs = dict(template.inputs)
        for name, (up, output) in step.reads.items():
            inputs[name] = InputBinding(path=self.results[up].paths[output])
        outputs = {name: out.model_copy(update={"path": str(folder / "outputs" / name)})
                   for name, out in template.outputs.items()}
        code = cache.snapshot(template.code, folder / "code") if template.code else None
        tags = {**template.tags, "mlflow.parentRunId": parent, "mlspec.pipeline": self.plan.name,
                "mlspec.pipeline.step": step.name}
        run = template.model_copy(update={"inputs": inputs, "outputs": outputs, "workdir": str(folder),
                                          "code": code, "log_file": str(folder / "job.log"), "tags": tags,
                                          "content_hash": run_hash})
        say = self.say

        def line(text: str) -> None:
            say(f"[{step.name}] {text}")

        if step.sweep is not None:
            return self._run_sweep(step, run, run_hash, folder, line, parent)
        from mlspec.runtime.train import run_job

        trained = run_job(run, on_line=line, stop=self.stop)
        if trained.status != "succeeded":
            status: StepStatus = "cancelled" if trained.status == "cancelled" else "failed"
            return StepResult(status, run_hash, trained.run_id, f"{trained.error} (log: {run.log_path})")
        models = [{"name": m.name, "version": int(m.version), "sha256": m.sha256, "run_id": m.run_id or trained.run_id,
                   "reused": m.reused} for m in trained.models]
        return self._finished(run_hash, folder, trained.run_id, {n: o.path for n, o in outputs.items()}, models)

    def _run_sweep(self, step: StepRun, run: JobRun, run_hash: str, folder: Path, line: LineCallback,
                   parent: str) -> StepResult:
        from mlspec.runtime.sweep.runner import SweepTrials, run_sweep

        assert step.sweep is not None
        trials = SweepTrials(sweep=step.sweep, template=run, folder=folder, storage=folder / "optuna.db",
                             seed=int(run_hash[:8], 16))
        swept = run_sweep(trials, on_line=line, stop=self.stop)
        if swept.run_id:  # a resumed study keeps its sweep run: it is this pipeline run's child now
            tracking.set_tags(self.plan.tracking_uri, swept.run_id, {"mlflow.parentRunId": parent})
        if swept.status != "succeeded" or swept.best_trial is None:
            status: StepStatus = "cancelled" if swept.status == "cancelled" else "failed"
            return StepResult(status, run_hash, swept.run_id, swept.error or "no trial succeeded")
        best = folder / f"trial-{swept.best_trial}" / "outputs"
        models = [{"name": m.name, "version": int(m.version), "sha256": m.sha256, "run_id": m.run_id or swept.run_id,
                   "reused": m.reused} for m in swept.models]
        return self._finished(run_hash, folder, swept.run_id, {n: str(best / n) for n in run.outputs}, models)

    def _finished(self, run_hash: str, folder: Path, run_id: str | None, paths: dict[str, str],
                  models: list[dict[str, Any]]) -> StepResult:
        missing = [name for name, path in paths.items() if not Path(path).exists()]
        if missing:  # a reader would find nothing there
            return StepResult("failed", run_hash, run_id, f"the step wrote nothing to outputs.{missing[0]} "
                              f"({paths[missing[0]]})")
        digests = {name: cache.output_digest(path) for name, path in paths.items()}
        cache.save(folder, {"status": "succeeded", "run_id": run_id, "paths": paths, "digests": digests,
                            "models": models, "finished": time.time()})
        return StepResult("succeeded", run_hash, run_id, paths=paths, digests=digests, models=models)

    def _end(self, parent: str, result: PipelineResult) -> None:
        statuses = {name: r.status for name, r in result.steps.items()}
        bad = [name for name, s in statuses.items() if s in ("failed", "cancelled")]
        if self.stop.is_set():
            result.status, result.error = "cancelled", f"pipeline '{self.plan.name}' was cancelled"
        elif bad:
            result.error = "; ".join(f"step {name}: {result.steps[name].error}" for name in bad)
        else:
            result.status = "succeeded"
        tags: dict[str, str] = {f"mlspec.step.{name}": status for name, status in statuses.items()}
        tags.update({f"mlspec.step.{name}.run": str(r.run_id) for name, r in result.steps.items() if r.run_id})
        tags["mlspec.status"] = result.status
        tracking.set_tags(self.plan.tracking_uri, parent, tags)
        ended: dict[str, tracking.RunStatus] = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
        tracking.end_run(self.plan.tracking_uri, parent, ended[result.status])


def _log(folder: Path) -> str | None:
    log = folder / "job.log"
    return str(log) if log.is_file() else None


def run_pipeline(plan: PipelineRun, on_line: LineCallback | None = None, stop: threading.Event | None = None,
                 slots: Slots | None = None) -> PipelineResult:
    """Run the pipeline's steps (reusing unchanged ones); a failed step fails the pipeline. `slots`: the compute's
    nodes shared with whatever else runs on them (the engine's); None: `plan.capacity` of this pipeline alone."""
    return _Pipeline(plan, on_line or (lambda _line: None), stop or threading.Event(), slots).run()

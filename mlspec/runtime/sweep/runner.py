"""Run a sweep: ask Optuna for parameters, run up to N trials at once as training runs (MLflow child runs of the
sweep's run), stop poor ones early from their intermediate metrics, and register the best trial's model.

Optuna's study lives in a sqlite file per sweep content hash: finished trials survive a killed `up`, and trials
that were running when it died are marked failed and asked again with the same parameters.
"""

from __future__ import annotations

import contextlib
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlspec.runtime import tracking
from mlspec.runtime.execute import LineCallback
from mlspec.runtime.jobrun import JobRun, literal_text
from mlspec.runtime.packaging import RegisteredModel, register_outputs
from mlspec.runtime.sweep.policies import History, evaluation_steps, should_stop
from mlspec.runtime.sweep.space import distributions, sampler, total_trials, trial_values
from mlspec.runtime.sweep.tracking_server import TrialTracking
from mlspec.runtime.train import TrainResult, run_job
from mlspec.spec.job import SEARCH_SPACE_SCOPE, placeholders
from mlspec.spec.sweep import SweepJob

if TYPE_CHECKING:
    import optuna

POLL_S = 0.25  # how often running trials' metrics are read for early termination
RUN_ID = "mlflow_run_id"  # Optuna user attribute: the trial's MLflow run
PARENT_RUN_ID = "mlflow_parent_run_id"  # study user attribute: the sweep's MLflow run, kept across resumes
INTERRUPTED = "interrupted"  # user attribute of a trial stopped by a killed or cancelled `up`: asked again
STOPPED_TAG = "mlspec.early_termination"  # the child run's tag saying why the policy stopped it


@dataclass(frozen=True)
class SweepTrials:
    """What a sweep needs: the spec, a template run for its trials and where its study and trials live."""

    sweep: SweepJob
    template: JobRun  # command still holds ${{search_space.*}}; outputs as the spec declares them
    folder: Path  # trial-N/ workdirs
    storage: Path  # optuna.db
    seed: int

    @property
    def study_name(self) -> str:
        return f"{self.sweep.name}-{self.template.content_hash[:16]}"


@dataclass
class SweepResult:
    status: Literal["succeeded", "failed", "cancelled"]
    run_id: str | None = None
    best_trial: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    models: list[RegisteredModel] = field(default_factory=list)
    ran: int = 0  # trials run by this call
    finished: int = 0  # trials finished in all, earlier calls included
    stopped_early: int = 0
    error: str | None = None


@dataclass
class _Running:
    trial: optuna.trial.Trial
    values: dict[str, Any]
    stop: threading.Event = field(default_factory=threading.Event)
    run_id: str | None = None
    result: TrainResult | None = None
    reason: str | None = None  # the early-termination policy's, once it stopped the trial
    evaluated: int = -1  # the last step the policy looked at
    thread: threading.Thread | None = None


def substitute_search_space(command: str, values: dict[str, Any]) -> str:
    """${{search_space.NAME}} replaced by the trial's value, shell-quoted; other placeholders left for the runner."""
    pieces, position = [], 0
    for item in placeholders(command):
        if item.scope == SEARCH_SPACE_SCOPE and not item.problem:
            pieces += [command[position:item.start], shlex.quote(literal_text(values[item.name]))]
            position = item.end
    return "".join(pieces) + command[position:]


class _Sweep:
    def __init__(self, spec: SweepTrials, on_line: LineCallback, stop: threading.Event) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.spec, self.sweep, self.say, self.stop = spec, spec.sweep, on_line, stop
        self.uri = spec.template.tracking_uri
        spec.storage.parent.mkdir(parents=True, exist_ok=True)
        storage = optuna.storages.RDBStorage(f"sqlite:///{spec.storage}",
                                             engine_kwargs={"connect_args": {"timeout": 60}})
        self.study = optuna.create_study(storage=storage, study_name=spec.study_name,
                                         direction=self.sweep.objective.goal,
                                         sampler=sampler(self.sweep, spec.seed), load_if_exists=True)
        self.dists = distributions(self.sweep)
        self.histories: dict[int, History] = {}
        self.running: dict[int, _Running] = {}
        self.woken = threading.Event()  # a trial finished
        self.server: TrialTracking | None = None
        self.result = SweepResult(status="failed")

    # -- the study ---------------------------------------------------------------------------------------------
    def requeue_interrupted(self) -> None:
        """Trials left running by an `up` that died: failed, marked interrupted, and asked again as they were."""
        from optuna.trial import TrialState

        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self.ask_again(trial._trial_id, trial.params)
            self.study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            self.say(f"trial {trial.number} was interrupted; its parameters are asked again")

    def ask_again(self, trial_id: int, params: dict[str, Any]) -> None:
        """Mark a running trial interrupted (it does not count) and have its parameters asked again."""
        storage = self.study._storage
        storage.set_trial_user_attr(trial_id, INTERRUPTED, True)
        if self.sweep.sampling_algorithm == "grid":
            # The grid sampler counts a failed trial's point as visited, but not one of another search space:
            # the point is asked again.
            storage.set_trial_system_attr(trial_id, "search_space", {})
        else:
            self.study.enqueue_trial(params, skip_if_exists=False)

    def finished(self) -> list[optuna.trial.FrozenTrial]:
        from optuna.trial import TrialState

        return [t for t in self.study.get_trials(deepcopy=False)
                if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                or (t.state == TrialState.FAIL and not t.user_attrs.get(INTERRUPTED))]

    def parent_run(self) -> str:
        """The sweep's MLflow run: the one an interrupted `up` started, or a new one."""
        template = self.spec.template
        known = self.study.user_attrs.get(PARENT_RUN_ID)
        if known:
            try:
                tracking.client(self.uri).update_run(known, status="RUNNING")
                return str(known)
            except Exception:  # deleted meanwhile: start another
                pass
        experiment = tracking.ensure_experiment(self.uri, template.experiment, template.artifact_location)
        tags = {**template.tags, "mlspec.job": self.sweep.name, "mlspec.hash": template.content_hash,
                "mlspec.sweep.study": self.spec.study_name, "mlflow.source.type": "JOB",
                "mlflow.source.name": self.sweep.name}
        run_id = tracking.start_run(self.uri, experiment, tags, run_name=self.sweep.name)
        self.study.set_user_attr(PARENT_RUN_ID, run_id)
        return run_id

    # -- trials ------------------------------------------------------------------------------------------------
    def trial_run(self, number: int, values: dict[str, Any], parent: str) -> JobRun:
        template = self.spec.template
        workdir = self.spec.folder / f"trial-{number}"
        outputs = {name: out.model_copy(update={"path": str(workdir / "outputs" / name), "register_as": None,
                                                "aliases": []}) for name, out in template.outputs.items()}
        tags = {**template.tags, "mlflow.parentRunId": parent, "mlspec.sweep": self.sweep.name,
                "mlspec.trial": str(number)}
        served: dict[str, Any] = {}
        if self.server is not None:
            served = {"command_tracking_uri": self.server.uri, "env": {**template.env, **self.server.env}}
        return template.model_copy(update={**served,
            "job": f"{self.sweep.name}-trial-{number}", "command": substitute_search_space(template.command, values),
            "workdir": str(workdir), "outputs": outputs, "log_file": str(workdir / "job.log"), "tags": tags,
            "timeout": self.sweep.limits.trial_timeout, "retries": 0})

    def launch(self, parent: str) -> None:
        trial = self.study.ask(self.dists)
        values = trial_values(self.sweep, trial.params)
        running = _Running(trial, values)
        run = self.trial_run(trial.number, values, parent)

        def target() -> None:
            try:
                running.result = run_job(run, stop=running.stop,
                                         on_run=lambda run_id: setattr(running, "run_id", run_id))
            finally:
                self.woken.set()

        running.thread = threading.Thread(target=target, name=f"trial-{trial.number}", daemon=True)
        self.running[trial.number] = running
        shown = ", ".join(f"{k}={literal_text(v)}" for k, v in values.items())
        self.say(f"trial {trial.number} started: {shown}")
        running.thread.start()

    def watch(self) -> None:
        """Read the running trials' intermediate metrics; stop those the early-termination policy rules out."""
        policy = self.sweep.early_termination
        metric = self.sweep.objective.primary_metric
        watched = []
        for number, running in self.running.items():
            if running.run_id is None or running.reason is not None:
                continue
            if running.trial.user_attrs.get(RUN_ID) is None:
                running.trial.set_user_attr(RUN_ID, running.run_id)
            if policy is not None:
                self.histories[number] = _history(self.uri, running.run_id, metric)
                watched.append((number, running))
        for number, running in watched:  # every history read first: trials are compared at the same moment
            assert policy is not None
            history = self.histories[number]
            others = {n: h for n, h in self.histories.items() if n != number}
            for step in evaluation_steps(policy, history):
                if step <= running.evaluated:
                    continue
                if not any(s >= step for h in others.values() for s, _ in h):
                    break  # no other trial got this far yet: judged once one does
                running.evaluated = step
                reason = should_stop(policy, self.sweep.objective.goal, history, others, step)
                if reason:
                    running.reason = reason
                    running.stop.set()
                    self.say(f"trial {number} stopped early: {reason}")
                    break

    def settle(self, number: int, running: _Running, interrupted: bool) -> None:
        """Tell Optuna how a trial that ended went."""
        from optuna.trial import TrialState

        result = running.result
        trial = running.trial
        metric = self.sweep.objective.primary_metric
        if running.run_id:
            self.histories[number] = _history(self.uri, running.run_id, metric)
            _log_values(self.uri, running.run_id, running.values)
        if running.reason is not None:
            if running.run_id:
                tracking.set_tags(self.uri, running.run_id, {STOPPED_TAG: running.reason})
            self.study.tell(trial, state=TrialState.PRUNED)
            self.result.stopped_early += 1
            return
        if result is not None and result.status == "succeeded":
            history = self.histories.get(number) or []
            if history:
                value = max(history, key=lambda item: item[0])[1]
                self.study.tell(trial, value)
                self.say(f"trial {number} finished: {metric} {value:.6g}")
                return
            error = f"the trial logged no metric '{metric}' (log it with mlflow.log_metric)"
        else:
            error = (result.error if result else None) or "the trial's runner stopped"
        if interrupted:  # Ctrl-C: the next `up` runs these parameters again
            self.ask_again(trial._trial_id, trial.params)
        trial.set_user_attr("error", error[:2000])
        self.study.tell(trial, state=TrialState.FAIL)
        if not interrupted:
            self.say(f"trial {number} failed: {error}")

    # -- the loop ----------------------------------------------------------------------------------------------
    def run(self) -> SweepResult:
        if self.uri.startswith("sqlite:"):
            self.server = TrialTracking(self.uri)
        try:
            return self._run()
        finally:
            if self.server is not None:
                self.server.close()

    def _run(self) -> SweepResult:
        self.requeue_interrupted()
        parent = self.parent_run()
        self.result.run_id = parent
        self.histories.update(self._earlier_histories())
        total = total_trials(self.sweep)
        concurrency = self.sweep.limits.max_concurrent_trials
        timeout = self.sweep.limits.timeout
        deadline = time.monotonic() + timeout if timeout else None
        done = len(self.finished())
        if done:
            self.say(f"resuming: {done} of {total} trials already finished")
        cancelled = timed_out = False
        while True:
            if self.stop.is_set() and not cancelled:
                cancelled = True
                for running in self.running.values():
                    running.stop.set()
            if deadline is not None and time.monotonic() >= deadline and not timed_out and not cancelled:
                timed_out = True
                self.say(f"the sweep's timeout ({timeout:g} s) is reached: running trials are stopped")
                for running in self.running.values():
                    running.stop.set()
            while not (cancelled or timed_out) and done + len(self.running) < total \
                    and len(self.running) < concurrency:
                self.launch(parent)
                self.result.ran += 1
            if not self.running:
                break
            self.woken.wait(POLL_S)
            self.woken.clear()
            self.watch()
            for number, running in list(self.running.items()):
                if running.thread is not None and not running.thread.is_alive():
                    del self.running[number]
                    self.settle(number, running, interrupted=cancelled)
                    done += 0 if cancelled and running.reason is None else 1
        self.result.finished = done
        if cancelled:
            self.result.status, self.result.error = "cancelled", f"sweep '{self.sweep.name}' was cancelled"
        else:
            self.register_best()
        self._end(parent)
        return self.result

    def register_best(self) -> None:
        from optuna.trial import TrialState

        complete = [t for t in self.study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        if not complete:
            errors = [str(t.user_attrs.get("error")) for t in self.study.get_trials(deepcopy=False)
                      if t.user_attrs.get("error")]
            self.result.error = (f"sweep '{self.sweep.name}': no trial succeeded"
                                 + (f"; the last one: {errors[-1]}" if errors else ""))
            return
        best = self.study.best_trial
        values = trial_values(self.sweep, best.params)
        self.result.best_trial, self.result.best_value, self.result.best_params = best.number, best.value, values
        run_id = str(best.user_attrs.get(RUN_ID) or "")
        template = self.spec.template
        workdir = self.spec.folder / f"trial-{best.number}"
        outputs = {name: out.model_copy(update={"path": str(workdir / "outputs" / name)})
                   for name, out in template.outputs.items()}
        # Registered as the sweep's (its name and hash), from the best trial's run and files.
        run = template.model_copy(update={"workdir": str(workdir), "outputs": outputs})
        self.result.models = [m.model_copy(update={"run_id": m.run_id or run_id})
                              for m in (register_outputs(self.uri, run_id, run) if run_id else [])]
        client = tracking.client(self.uri)
        for model in self.result.models:
            tags = {f"mlspec.param.{k}": literal_text(v) for k, v in values.items()}
            tags.update({"mlspec.sweep.trial": str(best.number), f"mlspec.{self.sweep.objective.primary_metric}":
                         f"{best.value:.6g}"})
            for key, text in tags.items():
                client.set_model_version_tag(model.name, str(model.version), key, text)
        self.result.status = "succeeded"
        shown = ", ".join(f"{k}={literal_text(v)}" for k, v in values.items())
        self.say(f"best trial {best.number}: {self.sweep.objective.primary_metric} {best.value:.6g} with {shown}")

    def _earlier_histories(self) -> dict[int, History]:
        metric = self.sweep.objective.primary_metric
        return {t.number: _history(self.uri, str(t.user_attrs[RUN_ID]), metric)
                for t in self.finished() if t.user_attrs.get(RUN_ID)}

    def _end(self, parent: str) -> None:
        result = self.result
        tags = {"mlspec.status": result.status, "mlspec.sweep.trials": str(result.finished),
                "mlspec.sweep.stopped_early": str(result.stopped_early)}
        if result.best_trial is not None:
            best_run = self.study.best_trial.user_attrs.get(RUN_ID)
            tags.update({"mlspec.sweep.best_trial": str(result.best_trial), "mlspec.sweep.best_run": str(best_run)})
            _log_values(self.uri, parent, result.best_params)
            tracking.client(self.uri).log_metric(parent, self.sweep.objective.primary_metric,
                                                 float(result.best_value or 0.0))
        tracking.set_tags(self.uri, parent, tags)
        statuses: dict[str, tracking.RunStatus] = {"succeeded": "FINISHED", "failed": "FAILED",
                                                   "cancelled": "KILLED"}
        status = statuses[result.status]
        tracking.end_run(self.uri, parent, status)


def _history(uri: str, run_id: str, metric: str) -> History:
    try:
        return [(int(m.step), float(m.value)) for m in tracking.client(uri).get_metric_history(run_id, metric)]
    except Exception:  # the run is being written: read it again at the next poll
        return []


def _log_values(uri: str, run_id: str, values: dict[str, Any]) -> None:
    """The trial's parameters as the run's params; one the script logged itself with other text keeps its own."""
    for name, value in values.items():
        with contextlib.suppress(Exception):
            tracking.log_params(uri, run_id, {name: literal_text(value)})


def run_sweep(spec: SweepTrials, on_line: LineCallback | None = None,
              stop: threading.Event | None = None) -> SweepResult:
    """Run (or resume) the sweep to its end; user errors end as a failed result with a message."""
    return _Sweep(spec, on_line or (lambda _line: None), stop or threading.Event()).run()

"""Run an AutoML job: its MLflow run, `concurrency` FLAML searches as processes (each its share of the learners and
trials, all within the one time budget), every candidate logged as a child run as it is evaluated, and the best
search's pipeline registered as the job's model.

Why processes split by learner: FLAML runs candidates one after another (its concurrent mode needs Ray), and
its search keeps one search thread per learner anyway; giving each process a disjoint set of learners lets each
learner's thread use a whole core for the whole budget, and the results compare on the same metric.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mlspec.runtime import tracking
from mlspec.runtime.automl.contract import BEST_FILE, MODEL_FILE, TRIALS_FILE, AutoMLRun, Search, search_deadline
from mlspec.runtime.automl.metrics import better
from mlspec.runtime.automl.trials import ChildRuns, TrialLog, algorithm_name
from mlspec.runtime.execute import ExecResult, LineCallback, run_command
from mlspec.runtime.jobrun import JobRun
from mlspec.runtime.packaging import RegisteredModel, register_outputs
from mlspec.spec.automl_catalog import ALGORITHMS, METRICS

POLL_S = 0.5  # how often the searches' logs are read for new candidates
METRIC_TAG = "mlspec.automl.metric"  # the parent run's primary metric: the leaderboard ranks by it
GOAL_TAG = "mlspec.automl.goal"
BEST_RUN_TAG = "mlspec.automl.best_run"
LOG_FILE = "automl.log"  # the job's lines, its searches' included


@dataclass
class AutoMLResult:
    status: Literal["succeeded", "failed", "cancelled"]
    run_id: str | None = None
    best_algorithm: str | None = None
    best_value: float | None = None
    best_run: str | None = None
    candidates: int = 0
    cores_used: float = 0.0  # CPU seconds of all searches over the searches' wall time
    models: list[RegisteredModel] = field(default_factory=list)
    error: str | None = None


def shares(learners: list[str], max_trials: int, concurrency: int) -> list[tuple[list[str], int]]:
    """Learners dealt round-robin to at most `concurrency` searches, and the trials split as evenly."""
    count = max(1, min(concurrency, len(learners), max_trials))
    dealt = [learners[i::count] for i in range(count)]
    return [(share, max_trials // count + (1 if i < max_trials % count else 0)) for i, share in enumerate(dealt)]


def _learners(run: AutoMLRun) -> list[str]:
    return [ALGORITHMS[name].flaml[run.task] for name in run.algorithms]


def _target_range(run: AutoMLRun) -> float:
    if not METRICS[run.metric].normalized:
        return 1.0
    import numpy as np

    from mlspec.runtime.automl.table import features_and_target, read_table

    _, y = features_and_target(read_table(run.data), run.target)
    return float(np.ptp(y))


class _AutoML:
    def __init__(self, run: AutoMLRun, say: LineCallback, stop: threading.Event) -> None:
        self.run, self.stop = run, stop
        self.uri = run.tracking_uri
        self.result = AutoMLResult(status="failed")
        self.halt = threading.Event()  # stops the searches: the caller's stop, or an error here
        self.log_path = Path(run.workdir) / LOG_FILE
        self._log_lock = threading.Lock()
        self._on_line = say

    def say(self, line: str) -> None:
        """A line for the caller and for the job's log (`mlspec logs JOB`); searches' lines come from threads."""
        with self._log_lock, open(self.log_path, "a", encoding="utf-8") as log:
            log.write(line + "\n")
        self._on_line(line)

    def parent(self) -> tuple[str, str]:
        run = self.run
        experiment = tracking.ensure_experiment(self.uri, run.experiment, run.artifact_location)
        tags = {**run.tags, "mlspec.job": run.job, "mlspec.hash": run.content_hash, METRIC_TAG: run.metric,
                GOAL_TAG: METRICS[run.metric].goal, "mlspec.automl.task": run.task, "mlflow.source.type": "JOB",
                "mlflow.source.name": run.job}
        params = {"task": run.task, "target_column_name": run.target, "primary_metric": run.metric,
                  "algorithms": ",".join(run.algorithms), "max_trials": str(run.max_trials),
                  "timeout_s": f"{run.timeout_s:g}", "max_concurrent_trials": str(run.concurrency),
                  "n_cross_validations": str(run.n_splits or "auto")}
        self.close_interrupted(experiment)
        return experiment, tracking.start_run(self.uri, experiment, tags, params, run_name=run.job)

    def close_interrupted(self, experiment: str) -> None:
        """Runs of this job left RUNNING by an `up` that was killed: ended KILLED, since this run replaces them."""
        client = tracking.client(self.uri)
        wanted = (f"tags.`mlspec.job` = '{self.run.job}' and tags.`{METRIC_TAG}` LIKE '%' and "
                  "attributes.status = 'RUNNING'")
        for stale in client.search_runs([experiment], filter_string=wanted, max_results=100):
            tracking.end_run(self.uri, stale.info.run_id, "KILLED")

    def search_runs(self, started: float) -> list[tuple[JobRun, Search]]:
        run = self.run
        reserve = min(10.0, max(1.0, 0.05 * run.timeout_s))
        searches = []
        for index, (learners, trials) in enumerate(shares(_learners(run), run.max_trials, run.concurrency)):
            folder = Path(run.workdir) / f"search-{index}"
            folder.mkdir(parents=True, exist_ok=True)
            search = Search(task=run.task, data=run.data, target=run.target, metric=run.metric, learners=learners,
                            deadline=started + run.timeout_s, reserve_s=reserve,
                            trial_time_s=run.trial_timeout_s, max_iter=trials, n_splits=run.n_splits,
                            seed=run.seed + index, n_jobs=run.cpus, folder=str(folder))
            config = folder / "search.json"
            config.write_text(search.model_dump_json())
            # The interpreter and the mlspec package the engine runs: the search's code is the engine's own.
            package_root = str(Path(__file__).resolve().parents[3])
            python_path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
            command = f"{shlex.quote(sys.executable)} -m mlspec.runtime.automl.worker {shlex.quote(str(config))}"
            searches.append((JobRun(
                job=f"{run.job}-search-{index}", experiment=run.experiment, tracking_uri=self.uri,
                artifact_location=run.artifact_location, command=command, workdir=str(folder),
                env={**run.env, "PYTHONPATH": python_path}, log_file=str(folder / "search.log"),
                timeout=search_deadline(run.timeout_s), content_hash=run.content_hash), search))
        return searches

    def execute(self) -> AutoMLResult:
        started = time.time()
        experiment, parent = self.parent()
        self.result.run_id = parent
        try:
            self.search(started, experiment, parent)
        except BaseException:
            self.result.status = "failed"
            self.end(parent)
            raise
        self.end(parent)
        return self.result

    def search(self, started: float, experiment: str, parent: str) -> None:
        searches = self.search_runs(started)
        learners = ", ".join(algorithm_name(x) for x in _learners(self.run))
        self.say(f"searching {learners} for {self.run.metric} with {len(searches)} process(es), "
                 f"{self.run.timeout_s:g} s budget (MLflow run {parent})")
        results: dict[int, ExecResult] = {}
        threads = []
        for index, (job_run, _) in enumerate(searches):
            def target(index: int = index, job_run: JobRun = job_run) -> None:
                def said(line: str) -> None:
                    self.say(f"search {index}: {line}")

                results[index] = run_command(job_run, None, on_line=said, stop=self.halt)
            threads.append(threading.Thread(target=target, name=f"automl-search-{index}", daemon=True))
        logs = [TrialLog(Path(search.folder) / TRIALS_FILE, index) for index, (_, search) in enumerate(searches)]
        children = ChildRuns(self.uri, experiment, parent, self.run.metric,
                             {**self.run.tags, "mlspec.job": self.run.job, "mlspec.hash": self.run.content_hash},
                             _target_range(self.run))
        for thread in threads:
            thread.start()
        try:
            while any(thread.is_alive() for thread in threads):
                if self.stop.is_set():
                    self.halt.set()
                children.drain(logs)
                for thread in threads:
                    thread.join(POLL_S / len(threads))
            children.drain(logs)
        finally:  # an error here (the tracking store, say) leaves no search running
            self.halt.set()
            for thread in threads:
                thread.join()
        wall = time.time() - started
        self.result.candidates = children.count
        if self.stop.is_set():
            self.result.status, self.result.error = "cancelled", f"AutoML job '{self.run.job}' was cancelled"
        else:
            self.finish(searches, results, logs, wall)

    def finish(self, searches: list[tuple[JobRun, Search]], results: dict[int, ExecResult], logs: list[TrialLog],
               wall: float) -> None:
        bests: list[tuple[int, dict[str, float | str]]] = []
        cpu = 0.0
        for index, (_, search) in enumerate(searches):
            best_file = Path(search.folder) / BEST_FILE
            if results.get(index) is not None and results[index].ok and best_file.exists():
                best = json.loads(best_file.read_text())
                bests.append((index, best))
                cpu += float(best.get("cpu_s", 0.0))
            else:
                tail = results[index].log_tail[-3:] if index in results else []
                self.say(f"search {index} ended without a model: {' | '.join(tail)}")
        self.result.cores_used = round(cpu / wall, 2) if wall > 0 else 0.0
        if not bests:
            self.result.error = (f"AutoML job '{self.run.job}': no search produced a model (logs under "
                                 f"{self.run.workdir})")
            return
        index, best = bests[0]
        for other, candidate in bests[1:]:
            if better(self.run.metric, float(candidate["value"]), float(best["value"])):
                index, best = other, candidate
        log = logs[index]
        self.result.best_run = log.runs.get(log.best_record) if log.best_record is not None else None
        self.result.best_algorithm = algorithm_name(str(best["learner"]))
        self.result.best_value = float(best["value"])
        self.register(Path(searches[index][1].folder) / MODEL_FILE)
        self.result.status = "succeeded"
        self.say(f"best: {self.result.best_algorithm} {self.run.metric} {self.result.best_value:.6g} of "
                 f"{self.result.candidates} candidates ({self.result.cores_used:.2f} cores used)")

    def register(self, model_file: Path) -> None:
        run = self.run
        outputs = {}
        for name, output in run.outputs.items():
            folder = Path(output.path)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / MODEL_FILE).write_bytes(model_file.read_bytes())
            outputs[name] = output.model_copy(update={"flavor": output.flavor or "sklearn"})
        job_run = JobRun(job=run.job, experiment=run.experiment, tracking_uri=self.uri,
                         artifact_location=run.artifact_location, command="", workdir=run.workdir, outputs=outputs,
                         content_hash=run.content_hash)
        assert self.result.run_id is not None
        self.result.models = register_outputs(self.uri, self.result.run_id, job_run)

    def end(self, parent: str) -> None:
        result = self.result
        client = tracking.client(self.uri)
        tags = {"mlspec.status": result.status, "mlspec.automl.candidates": str(result.candidates)}
        if result.best_algorithm is not None and result.best_value is not None:
            tags.update({"mlspec.automl.best_algorithm": result.best_algorithm,
                         BEST_RUN_TAG: result.best_run or ""})
            client.log_metric(parent, self.run.metric, result.best_value)
            client.log_metric(parent, "cores_used", result.cores_used)
        tracking.set_tags(self.uri, parent, tags)
        statuses: dict[str, tracking.RunStatus] = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
        tracking.end_run(self.uri, parent, statuses[result.status])


def run_automl(run: AutoMLRun, on_line: LineCallback | None = None,
               stop: threading.Event | None = None) -> AutoMLResult:
    """Run the AutoML job to its end; a search that fails leaves the others' results."""
    return _AutoML(run, on_line or (lambda _line: None), stop or threading.Event()).execute()

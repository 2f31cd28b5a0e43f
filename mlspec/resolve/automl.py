"""AutoML jobs at resolve time: a metric and algorithms of the job's task, a table that holds the target column,
and no more concurrent searches than the compute has nodes."""

from __future__ import annotations

import csv
from pathlib import Path

from mlspec.diagnostics import Diagnostic, Diagnostics, did_you_mean
from mlspec.resolve.spec import ResolvedSpec
from mlspec.spec.automl import AutoMLJob
from mlspec.spec.automl_catalog import ALGORITHMS, METRICS, UNSEARCHED, algorithms_for, metrics_for
from mlspec.spec.compute import ClusterCompute
from mlspec.validate import Declared

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def check_automl(spec: ResolvedSpec, diagnostics: Diagnostics) -> None:
    for item in spec.resources.values():
        job = item.resource
        if isinstance(job, AutoMLJob):
            _metric(item, job, diagnostics)
            _algorithms(item, job, diagnostics)
            _concurrency(spec, item, job, diagnostics)
            _table(spec, item, job, diagnostics)


def _metric(item: Declared, job: AutoMLJob, diagnostics: Diagnostics) -> None:
    name = job.primary_metric
    if name is None:
        return
    metric = METRICS.get(name)
    path = "primary_metric"
    if metric is not None and metric.task == job.task:
        return
    if metric is not None:
        what = f"a {metric.task} metric; this job's task is {job.task}"
    else:
        what = "not a metric mlspec's AutoML knows"
    guess = did_you_mean(name, metrics_for(job.task)) or did_you_mean(name.lower(), metrics_for(job.task))
    hint = f"did you mean '{guess}'?" if guess else f"{job.task} metrics: {', '.join(metrics_for(job.task))}"
    diagnostics.add(Diagnostic(f"job '{job.name}': primary_metric '{name}' is {what}", item.doc.span((path,)), path,
                               hint))


def _algorithms(item: Declared, job: AutoMLJob, diagnostics: Diagnostics) -> None:
    searched = algorithms_for(job.task)
    listed = {"allowed_training_algorithms": job.training.allowed_training_algorithms or [],
              "blocked_training_algorithms": job.training.blocked_training_algorithms}
    reported = len(diagnostics.items)
    for field, names in listed.items():
        for index, name in enumerate(names):
            path = f"training.{field}.{index}"
            span = item.doc.span(("training", field, index))
            if name in UNSEARCHED:
                diagnostics.add(Diagnostic(f"job '{job.name}': {name} is not offered: {UNSEARCHED[name]}", span,
                                           path, f"{job.task} algorithms: {', '.join(searched)}"))
            elif name in ALGORITHMS and name not in searched:
                tasks = " and ".join(ALGORITHMS[name].flaml)
                diagnostics.add(Diagnostic(f"job '{job.name}': {name} is a {tasks} algorithm; this job's task is "
                                           f"{job.task}", span, path, f"{job.task} algorithms: {', '.join(searched)}"))
            elif name not in ALGORITHMS:
                guess = did_you_mean(name, searched)
                hint = f"did you mean '{guess}'?" if guess else f"{job.task} algorithms: {', '.join(searched)}"
                diagnostics.add(Diagnostic(f"job '{job.name}': unknown training algorithm '{name}'", span, path, hint))
    if len(diagnostics.items) == reported and not remaining(job):
        path = "training"
        diagnostics.add(Diagnostic(f"job '{job.name}': every {job.task} algorithm is blocked or left out; nothing "
                                   "would be searched", item.doc.span((path,)), path,
                                   "allow one that is not blocked"))


def remaining(job: AutoMLJob) -> list[str]:
    """The Azure ML algorithm names the job searches: allowed (or all of its task's) less the blocked ones."""
    searched = algorithms_for(job.task)
    allowed = job.training.allowed_training_algorithms or searched
    blocked = set(job.training.blocked_training_algorithms)
    return [name for name in searched if name in allowed and name not in blocked]


def _concurrency(spec: ResolvedSpec, item: Declared, job: AutoMLJob, diagnostics: Diagnostics) -> None:
    compute_id = spec.target(item.id, "compute")
    if compute_id is None or compute_id not in spec.resources:
        return  # an undeclared compute is reported where it is named
    compute = spec.get(compute_id)
    nodes = compute.max_nodes if isinstance(compute, ClusterCompute) else 1
    wanted = job.limits.max_concurrent_trials
    if wanted <= nodes:
        return
    path = "limits.max_concurrent_trials"
    if isinstance(compute, ClusterCompute):
        what, fix = f"max_nodes is {nodes}", f"lower it to {nodes}, or raise compute '{compute.name}''s max_nodes"
    else:
        what = f"a {getattr(compute, 'type', 'local')} compute runs one search at a time"
        fix = "run the job on a cluster compute with max_nodes"
    diagnostics.add(Diagnostic(f"job '{job.name}': {path} is {wanted}, but compute '{compute.name}' can run only "
                               f"{nodes} at once ({what})", item.doc.span(("limits", "max_concurrent_trials")),
                               path, fix))


def _table(spec: ResolvedSpec, item: Declared, job: AutoMLJob, diagnostics: Diagnostics) -> None:
    """The training data is one CSV or Parquet file whose header names the target column."""
    data_id = spec.target(item.id, "training_data")
    path = spec.files.get(data_id, {}).get("path") if data_id else None
    if path is None:
        return  # undeclared, or its path is missing: reported there
    if path.is_dir() or path.suffix.lower() not in TABLE_SUFFIXES:
        diagnostics.add(Diagnostic(
            f"job '{job.name}': training_data {job.training_data} is {path.name}, not a CSV or Parquet file",
            item.doc.span(("training_data",)), "training_data", "point the Data resource at one .csv or .parquet file"))
        return
    try:
        columns = table_columns(path)
    except Exception as error:  # unreadable: say so before anything runs
        diagnostics.add(Diagnostic(f"job '{job.name}': cannot read the columns of {path.name}: {error}",
                                   item.doc.span(("training_data",)), "training_data"))
        return
    if job.target_column_name in columns:
        if len(columns) < 2:
            diagnostics.add(Diagnostic(f"job '{job.name}': {path.name} has no column besides the target",
                                       item.doc.span(("training_data",)), "training_data"))
        return
    guess = did_you_mean(job.target_column_name, columns)
    hint = f"did you mean '{guess}'?" if guess else f"its columns: {', '.join(columns[:20])}"
    diagnostics.add(Diagnostic(f"job '{job.name}': {path.name} has no column '{job.target_column_name}'",
                               item.doc.span(("target_column_name",)), "target_column_name", hint))


def table_columns(path: Path) -> list[str]:
    """The column names of a CSV file (its header row) or a Parquet file (its schema), read without the rows."""
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return next(csv.reader(handle), [])
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)

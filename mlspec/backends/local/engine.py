"""The embedded local engine: plan, up, down and status of a spec on this machine."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from mlspec.backends.local.apply import Outcome, _delete, apply_plan
from mlspec.backends.local.context import Context
from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.processes import stop_group, workspace_processes
from mlspec.backends.local.state import StateStore, exclusive
from mlspec.backends.local.supervisor import ensure_running, running
from mlspec.backends.local.teardown import remember_workspace
from mlspec.graph import Graph
from mlspec.plan import Change, Plan, plan


def workspace_paths(graph: Graph) -> WorkspacePaths:
    return WorkspacePaths(graph.spec.root / graph.spec.workspace.storage.path)


def _printer() -> Callable[[str], None]:
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    return say


@dataclass
class LocalEngine:
    graph: Graph
    lock_timeout: float = 0.0

    @property
    def paths(self) -> WorkspacePaths:
        return workspace_paths(self.graph)

    def plan(self) -> Plan:
        if not self.paths.state_db.exists():
            return plan(self.graph, {})
        store = StateStore(self.paths.state_db)
        try:
            return plan(self.graph, store.records())
        finally:
            store.close()

    def up(self, confirm: Callable[[Plan], bool], show: Callable[[Plan], None]) -> tuple[Plan, Outcome | None]:
        """Plan under the workspace lock, show it, ask, apply. Returns the plan and what happened."""
        self.paths.create()
        with exclusive(self.paths.lock, self.lock_timeout):
            store = StateStore(self.paths.state_db)
            try:
                self._sweep_interrupted_jobs()
                remember_workspace(store, self.graph)  # so `down` works from the state when the spec does not
                records = store.records()
                the_plan = plan(self.graph, records)
                show(the_plan)
                if any(row.desired for row in store.processes()):
                    ensure_running(self.paths)  # converge after a crash or reboot, even with no changes
                if not the_plan.has_changes or not confirm(the_plan):
                    return the_plan, None
                store.backup()
                ctx = Context(self.graph, self.paths, store, records, _printer())
                if any(c.kind in ("Job", "Model", "Endpoint") and c.action != "delete" for c in the_plan.changes):
                    _prepare_tracking(ctx)
                return the_plan, apply_plan(ctx, the_plan)
            finally:
                store.close()

    def _sweep_interrupted_jobs(self) -> None:
        """Job processes left by an `up` that was killed: nothing else runs jobs while we hold the lock."""
        for pid, process_id in workspace_processes(str(self.paths.root.resolve())).items():
            if process_id.startswith("job/"):
                stop_group(pid, grace=2.0)

    def down(self, purge: bool, confirm: Callable[[list[str]], bool]) -> Outcome | None:
        if not self.paths.state_db.exists():
            return Outcome()
        with exclusive(self.paths.lock, self.lock_timeout):
            store = StateStore(self.paths.state_db)
            try:
                self._sweep_interrupted_jobs()
                records = store.records()
                order = [c.id for c in plan(_empty_graph(self.graph), records).changes if c.action == "delete"]
                if not order or not confirm(order):
                    return Outcome() if not order else None
                ctx = Context(self.graph, self.paths, store, records, _printer())
                outcome = Outcome()
                for rid in order:
                    _delete_with(ctx, rid, outcome, purge)
                for row in store.processes():
                    store.observe(row.id, desired=0)
                if store.processes():
                    ensure_running(self.paths)
                    _wait_stopped(store)
                return outcome
            finally:
                store.close()


def _prepare_tracking(ctx: Context) -> None:
    """Create the MLflow store once, before parallel jobs race to run its migrations, and close out runs
    that an interrupted `up` left RUNNING."""
    import logging

    import mlflow  # noqa: F401 - imported first: it sets its loggers' levels on import

    from mlspec.runtime.tracking import client

    for noisy in ("mlflow", "alembic"):  # store migrations log at INFO; progress lines say what matters
        logging.getLogger(noisy).setLevel(logging.WARNING)
    store = client(ctx.tracking_uri)
    workspace = ctx.graph.spec.workspace.name
    experiments = [e.experiment_id for e in store.search_experiments()]
    if not experiments:
        return
    stale = store.search_runs(experiments, filter_string=f"attributes.status = 'RUNNING' and "
                                                           f"tags.`mlspec.workspace` = '{workspace}'")
    for run in stale:
        store.set_terminated(run.info.run_id, status="KILLED")
        ctx.say(f"  marked run {run.info.run_id[:12]} of job {run.data.tags.get('mlspec.job')} as killed "
                "(an earlier up was interrupted)")


def _delete_with(ctx: Context, rid: str, outcome: Outcome, purge: bool) -> None:
    _delete(ctx, Change(rid, ctx.records[rid].kind, "delete"), outcome, purge)


def _wait_stopped(store: StateStore, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while store.processes() and time.monotonic() < deadline:
        time.sleep(0.1)


def _empty_graph(graph: Graph) -> Graph:
    return Graph(graph.spec, {})


def supervisor_running(graph: Graph) -> bool:
    return running(workspace_paths(graph))

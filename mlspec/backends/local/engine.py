"""The embedded local engine: plan, up, down and status of a spec on this machine."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from mlspec.backends.local.apply import Outcome, _delete, apply_plan
from mlspec.backends.local.capacity import check_local_capacity
from mlspec.backends.local.context import Context
from mlspec.backends.local.degraded import SETTLE_S, Degraded, settled
from mlspec.backends.local.paths import WorkspacePaths, owner_only
from mlspec.backends.local.processes import abandoned_processes, is_ours, stop_group
from mlspec.backends.local.refresh import refresh, revive
from mlspec.backends.local.registry import read_registry
from mlspec.backends.local.schedule_state import schedules
from mlspec.backends.local.state import ProcessRow, StateStore, exclusive
from mlspec.backends.local.supervisor_start import ensure_running, running
from mlspec.backends.local.teardown import remember_workspace
from mlspec.diagnostics import Diagnostics, SpecError
from mlspec.graph import Graph
from mlspec.plan import Change, Drift, Plan, Record, plan
from mlspec.resolve.models import model_references


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

    def check(self) -> None:
        """Refuse, with a diagnostic at the line, what this machine cannot give the spec (GPUs, Python)."""
        found = check_local_capacity(self.graph.spec)
        if found:
            raise SpecError(Diagnostics(found))

    @property
    def tracking_uri(self) -> str:
        return self.graph.spec.workspace.tracking.uri or self.paths.tracking_uri

    def plan(self) -> Plan:
        """The spec against the recorded state, refreshed with what really runs."""
        return self.refresh()[1]

    def plan_with_records(self) -> tuple[Plan, Graph, dict[str, Record]]:
        """The plan, the graph it plans and the recorded state it was made against."""
        _, the_plan, records = self._refreshed()
        return the_plan, self.graph, records

    def refresh(self) -> tuple[dict[str, list[Drift]], Plan]:
        """What really runs differs from the recorded state how (per resource), and the plan that repairs it."""
        drift, the_plan, _ = self._refreshed()
        return drift, the_plan

    def _refreshed(self) -> tuple[dict[str, list[Drift]], Plan, dict[str, Record]]:
        self.check()
        if not self.paths.state_db.exists():
            return {}, self._plan({}, {}), {}
        store = StateStore(self.paths.state_db)
        try:
            records = store.records()
            drift = refresh(self.graph, self.paths, store, records, self.tracking_uri)
            return drift, self._plan(records, drift), records
        finally:
            store.close()

    def plan_published(self, records: dict[str, Record]) -> Plan:
        """The spec against records another machine published: no refresh (its processes are out of sight), no
        capacity check (that machine applies it), and the registry read only where it is a server both reach."""
        return self._plan(records, {}, published=True)

    def _plan(self, records: dict[str, Record], drift: dict[str, list[Drift]], published: bool = False) -> Plan:
        """The plan, with model versions numbered as the registry will number them and aliases it lacks blocking
        it; the registry is read only when a model changes or the spec relies on an alias it does not declare."""
        first = plan(self.graph, records, drift=drift)
        names = [c.id.split("/", 1)[1] for c in first.changes if c.kind == "Model" and c.action != "noop"]
        names += [ref.name for _, _, ref in model_references(self.graph.spec)
                  if ref.version is not None or ref.alias not in (None, "latest")]
        workspace_uri = self.graph.spec.workspace.tracking.uri
        remote = (workspace_uri or "").startswith(("http://", "https://"))
        if not names or (published and not remote):  # the deploying machine's own store is out of reach
            return first
        local_db = None if workspace_uri else self.paths.root / "mlflow.db"
        registry = read_registry(workspace_uri or self.paths.tracking_uri, names, local_db)
        return plan(self.graph, records, registry, drift)

    def up(self, confirm: Callable[[Plan], bool], show: Callable[[Plan], None]) -> tuple[Plan, Outcome | None]:
        """Plan under the workspace lock, show it, ask, apply. Returns the plan and what happened."""
        self.check()  # before anything is created or started
        with owner_only():
            self.paths.create()
            with exclusive(self.paths.lock, self.lock_timeout):
                return self._up(confirm, show)

    def _up(self, confirm: Callable[[Plan], bool], show: Callable[[Plan], None]) -> tuple[Plan, Outcome | None]:
        """The body of `up`, under the workspace lock."""
        store = StateStore(self.paths.state_db)
        try:
            self._sweep_interrupted_jobs()
            remember_workspace(store, self.graph)  # so `down` works from the state when the spec does not
            records = store.records()
            the_plan = self._plan(records, refresh(self.graph, self.paths, store, records, self.tracking_uri))
            show(the_plan)
            if the_plan.blockers:  # stop before anything runs
                return the_plan, Outcome(failed={b.id: b.message for b in the_plan.blockers})
            apply = False
            try:
                apply = the_plan.has_changes and confirm(the_plan)
            finally:
                if apply:
                    revive(self.paths, store)  # before a supervisor starts: they start afresh, not as crashes
                if any(row.desired for row in store.processes()) or schedules(store):
                    ensure_running(self.paths)  # converge after a crash or reboot, even with no changes
            if not apply:
                return the_plan, None
            store.backup()
            ctx = Context(self.graph, self.paths, store, records, _printer())
            if any(c.kind in ("Job", "Model", "Endpoint") and c.action != "delete" for c in the_plan.changes):
                _prepare_tracking(ctx)
            outcome = apply_plan(ctx, the_plan)
            if schedules(store):
                ensure_running(self.paths)  # the supervisor fires the schedules this apply armed
            return the_plan, outcome
        finally:
            store.close()

    def degraded(self, wait_s: float = SETTLE_S) -> list[Degraded]:
        """Deployments whose replicas crash-loop or restart, once restarting ones came back or did not."""
        if not self.paths.state_db.exists():
            return []
        store = StateStore(self.paths.state_db)
        try:
            return settled(store, wait_s)
        finally:
            store.close()

    def _sweep_interrupted_jobs(self) -> None:
        """Job and batch processes whose `up` is gone (their watchdog normally stops them with it): only those,
        never the supervisor's, nor those of an `up` that still runs."""
        for pid in abandoned_processes(str(self.paths.root.resolve())):
            stop_group(pid, grace=2.0)

    def down(self, purge: bool, confirm: Callable[[list[str]], bool]) -> Outcome | None:
        if not self.paths.state_db.exists():
            return Outcome()
        with owner_only(), exclusive(self.paths.lock, self.lock_timeout):
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
                    _wait_stopped(self.paths, store)
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


def _wait_stopped(paths: WorkspacePaths, store: StateStore, timeout: float = 30.0) -> None:
    """Until the supervisor has stopped every process (started again if it is gone meanwhile)."""
    import time

    deadline = time.monotonic() + timeout
    while store.processes() and time.monotonic() < deadline:
        ensure_running(paths)
        time.sleep(0.1)


def _empty_graph(graph: Graph) -> Graph:
    return Graph(graph.spec, {})


def supervisor_running(graph: Graph) -> bool:
    return running(workspace_paths(graph))


def observed_processes(store: StateStore) -> list[ProcessRow]:
    """The supervised processes as they are: one recorded as running whose pid is gone (or is now another
    program's) is shown as exited, whatever the state last recorded."""
    rows = store.processes()
    for row in rows:
        if row.state == "running" and not is_ours(row.pid, row.id):
            row.state = "exited"
    return rows

"""Refresh: compare the recorded state with what really runs, and say how `up` repairs each difference.

Four looks, each cheap on a workspace in sync: supervised processes (by pid identity), gateways (their file and
what the running one reports, with a short timeout), the MLflow registry (read-only sqlite) and data snapshots
(file stamps, hashed only when a stamp differs).
"""

from __future__ import annotations

from collections import defaultdict

from mlspec.backends.local.handlers import data
from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.processes import is_ours
from mlspec.backends.local.registry_drift import registry_drift
from mlspec.backends.local.serving_drift import gateway_drift, process_drift
from mlspec.backends.local.state import StateStore
from mlspec.backends.local.supervisor_start import running
from mlspec.graph import Graph
from mlspec.plan import Drift, Record


def refresh(graph: Graph, paths: WorkspacePaths, store: StateStore, records: dict[str, Record],
            tracking_uri: str) -> dict[str, list[Drift]]:
    """Drift per resource id, for the resources still in the spec and recorded as ready (others are planned
    anyway). Serving drift comes first, so a redeploy is named before a gateway reconfiguration."""
    current = [r for r in records.values() if r.id in graph.nodes and r.status == "ready"]
    found: dict[str, list[Drift]] = defaultdict(list)
    serving = [r for r in current if r.kind in ("Endpoint", "Compute")]
    rows = store.processes() if serving else []
    looks = [process_drift(serving, rows, running(paths) if rows else False),
             registry_drift(current, tracking_uri), gateway_drift(paths, serving, rows)]
    for look in looks:
        for rid, items in look.items():
            found[rid].extend(items)
    for record in current:
        if record.kind == "Data" and (reason := data.check(record)):
            found[record.id].append(Drift(reason, "re-snapshot"))
    return {rid: items for rid, items in found.items() if items}


def revive(paths: WorkspacePaths, store: StateStore) -> list[str]:
    """Processes that died while no supervisor ran start afresh (not as crash restarts) when `up` starts one:
    their restart count is history, recorded as an event, and no longer a crash of this start."""
    if running(paths):
        return []
    revived = []
    for row in store.processes():
        if row.desired and row.state != "stopped" and not is_ours(row.pid, row.id):
            store.observe(row.id, pid=None, state="pending", restarts=0, streak=0)
            store.event(row.owner, f"{row.id} was not running (last exit {row.last_exit}, {row.restarts} "
                                   "restart(s)); started again by up")
            revived.append(row.id)
    return revived

"""What `down` needs beyond the handlers: a workspace known from its state alone, the tracking store's purge,
and waiting until none of the workspace's processes is left."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.processes import workspace_processes
from mlspec.backends.local.state import StateStore
from mlspec.backends.local.supervisor_start import running
from mlspec.graph import Graph
from mlspec.resolve import ResolvedSpec
from mlspec.spec import Workspace


def remember_workspace(store: StateStore, graph: Graph) -> None:
    """Record what `down` must know when the spec no longer loads: the workspace's name and tracking store."""
    workspace = graph.spec.workspace
    store.set_meta("workspace", workspace.name)
    store.set_meta("tracking_uri", workspace.tracking.uri or "")


def graph_from_state(paths: WorkspacePaths) -> Graph:
    """A graph with no resources that stands for the workspace whose state is at `paths`: enough for `down`,
    which removes what the state records."""
    store = StateStore(paths.state_db)
    try:
        name, uri = store.meta("workspace") or "workspace", store.meta("tracking_uri") or None
    finally:
        store.close()
    root = paths.root.resolve()
    workspace = Workspace(name=name, storage={"path": str(root)}, tracking={"uri": uri})
    return Graph(ResolvedSpec(root.parent, workspace), {})


def purge_tracking(paths: WorkspacePaths, workspace: str, tracking_uri: str, say: Callable[[str], None]) -> None:
    """Delete the workspace's runs, experiments and registered models.

    The workspace's own store (`mlflow.db` and `artifacts/` in the workspace folder) holds nothing else, so it
    goes whole: deleted runs would otherwise stay on disk until `mlflow gc`. On a tracking server that others
    share, only this workspace's runs (tagged `mlspec.workspace`) are deleted; the registered models were
    deleted by their resources."""
    if tracking_uri == paths.tracking_uri:
        database = paths.root / "mlflow.db"
        for path in (database, database.with_name("mlflow.db-journal")):
            path.unlink(missing_ok=True)
        shutil.rmtree(paths.artifacts, ignore_errors=True)
        say(f"  - deleted the tracking store {database} and {paths.artifacts}: every run, experiment and "
            "registered model version of the workspace")
        return
    from mlspec.runtime.tracking import client

    store = client(tracking_uri)
    experiments = [e.experiment_id for e in store.search_experiments()]
    found = store.search_runs(experiments, filter_string=f"tags.`mlspec.workspace` = '{workspace}'") \
        if experiments else []
    for run in found:
        store.delete_run(run.info.run_id)
    say(f"  - deleted {len(found)} run(s) of workspace {workspace} on {tracking_uri}")


def purge_endpoint_records(paths: WorkspacePaths) -> None:
    """Sampled requests and gateways' traffic records; once no gateway runs, so none writes them again."""
    shutil.rmtree(paths.root / "samples", ignore_errors=True)
    for history in (paths.root / "endpoints").glob("*/traffic.jsonl"):
        history.unlink(missing_ok=True)


def wait_until_gone(paths: WorkspacePaths, timeout: float) -> dict[int, str]:
    """Wait until no process of the workspace runs, the supervisor included; what is still alive at the end."""
    deadline = time.monotonic() + timeout
    workspace = str(paths.root.resolve())
    while True:
        left = workspace_processes(workspace)
        if not left and not running(paths):
            return {}
        if time.monotonic() >= deadline:
            return left or {0: "the supervisor (see " + str(paths.supervisor_log) + ")"}
        time.sleep(0.1)


def is_workspace(folder: Path) -> bool:
    return (folder / "state.db").exists()

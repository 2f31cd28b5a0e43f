"""`mlspec down` on the local engine: from the spec, or from the recorded state when the spec no longer loads."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlspec.cli.common import CommandError, confirm, require_local
from mlspec.cli.output import EXIT_FAILED, EXIT_INVALID, EXIT_OK, report_diagnostics


def _engine(args: argparse.Namespace) -> Any:
    """The engine for the spec; for the state alone with --workspace, or when the spec is broken or deleted
    and its folder still holds the default workspace folder `.mlspec`."""
    from mlspec.backends.local.engine import LocalEngine
    from mlspec.backends.local.paths import WorkspacePaths
    from mlspec.backends.local.teardown import graph_from_state, is_workspace
    from mlspec.graph import analyze

    timeout = args.lock_timeout
    if args.workspace:
        folder = Path(args.workspace)
        if not is_workspace(folder):
            raise CommandError(f"{folder} holds no mlspec state (state.db): nothing to remove there", EXIT_FAILED)
        return LocalEngine(graph_from_state(WorkspacePaths(folder)), lock_timeout=timeout)
    analysis = analyze(args.paths)
    if analysis.graph is not None:
        return LocalEngine(analysis.graph, lock_timeout=timeout)
    first = Path(args.paths[0])
    folder = (first if first.is_dir() else first.parent) / ".mlspec"
    if not is_workspace(folder):
        report_diagnostics(analysis, False)
        raise CommandError("the spec does not load, and its folder holds no workspace (.mlspec/state.db): fix the "
                           "spec, or name the workspace folder with --workspace DIR", EXIT_INVALID)
    errors = len(analysis.diagnostics.errors)
    print(f"The spec does not load ({errors} error(s): see `mlspec validate`); removing what the state in "
          f"{folder} records.")
    return LocalEngine(graph_from_state(WorkspacePaths(folder)), lock_timeout=timeout)


def _processes(state_db: Path) -> dict[str, list[Any]]:
    from mlspec.backends.local.state import StateStore

    store = StateStore(state_db)
    try:
        by_owner: dict[str, list[Any]] = {}
        for row in store.processes():
            if row.desired:
                by_owner.setdefault(row.owner, []).append(row)
        return by_owner
    finally:
        store.close()


def down(args: argparse.Namespace) -> int:
    from mlspec.backends.local.state import LockTimeout, StateError, exclusive
    from mlspec.backends.local.teardown import purge_endpoint_records, purge_tracking, wait_until_gone
    from mlspec.cli.failures import note_workspace
    from mlspec.cli.shared_state import sharing
    from mlspec.cli.stacks import check_workspace, release_workspace
    from mlspec.render.teardown import removal_text

    require_local(args)
    engine = _engine(args)
    paths = engine.paths
    note_workspace(paths.root)
    if not args.workspace:  # --workspace names the folder to remove, whichever stack deployed it
        check_workspace(paths, args)
    if not paths.state_db.exists():
        print(f"Nothing to remove: no mlspec state in {paths.root}.")
        return EXIT_OK

    def ask(ids: list[str]) -> bool:
        print(removal_text(ids, _processes(paths.state_db), args.purge, str(paths.root)), flush=True)
        return confirm(f"Remove {len(ids)} resource(s)?", args)

    try:
        with sharing(args, engine, "down"):
            outcome = engine.down(args.purge, ask)
        if outcome is None:
            print("Nothing removed.")
            return EXIT_OK
        left = wait_until_gone(paths, args.wait)
        if left:
            named = ", ".join(f"pid {pid} ({what})" if pid else what for pid, what in sorted(left.items()))
            pids = " ".join(str(pid) for pid in sorted(left) if pid)
            raise CommandError(f"{len(left)} process(es) of the workspace still run {args.wait:g}s after `down`: "
                               f"{named}. " + (f"Stop them with `kill {pids}` (or `kill -9`), then run `mlspec down` "
                                               "again." if pids else "Run `mlspec down` again."), EXIT_FAILED)
        if args.purge:  # once no server reads the tracking store any more
            workspace = engine.graph.spec.workspace
            with exclusive(paths.lock, args.lock_timeout):
                purge_tracking(paths, workspace.name, workspace.tracking.uri or paths.tracking_uri, print)
            purge_endpoint_records(paths)
    except (LockTimeout, StateError) as exc:
        raise CommandError(str(exc), EXIT_FAILED) from exc
    if outcome.ok:
        release_workspace(paths)
    kept = "" if args.purge else " Registered models and runs are kept (--purge removes them)."
    print(f"Removed {len(outcome.done)} resource(s); no process of the workspace is left.{kept}")
    return EXIT_OK if outcome.ok else EXIT_FAILED

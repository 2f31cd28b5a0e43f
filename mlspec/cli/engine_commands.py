"""Commands that change or inspect a deployed workspace: refresh, up, down, status."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from mlspec.cli.common import CommandError, confirm, local_engine, target_of
from mlspec.cli.output import EXIT_FAILED, EXIT_OK, print_json


def _style() -> Any:
    from mlspec.render.style import Style, use_colour

    return Style(use_colour())


def refresh(args: argparse.Namespace) -> int:
    from mlspec.backends.local.state import StateError
    from mlspec.render.plan import drift_text

    try:
        drift, the_plan = local_engine(args).refresh()
    except StateError as exc:
        raise CommandError(str(exc), EXIT_FAILED) from exc
    if args.json:
        print_json({"drift": {rid: [d.reason for d in items] for rid, items in drift.items()},
                    "changes": [c.as_dict() for c in the_plan.changes if c.drifted]})
    else:
        print(drift_text(the_plan, _style()))
    if args.detailed_exitcode:
        return 2 if drift else 0
    return EXIT_OK


def up(args: argparse.Namespace) -> int:
    from mlspec.backends.local.apply import Interrupted
    from mlspec.backends.local.state import LockTimeout, StateError
    from mlspec.cli.interrupts import EXIT_INTERRUPTED, stop_steps_now, two_stage_interrupt
    from mlspec.cli.shared_state import sharing
    from mlspec.cli.stacks import announce, claim_workspace
    from mlspec.cli.urls import print_urls
    from mlspec.render.plan import plan_text
    from mlspec.render.progress import interrupted

    announce(args)
    engine = local_engine(args, check_target=True)
    claim_workspace(engine.paths, args)
    started = time.monotonic()
    try:
        with sharing(args, engine, "up"), two_stage_interrupt(lambda: stop_steps_now(engine.paths.root)):
            the_plan, outcome = engine.up(
                confirm=lambda p: confirm("Apply these changes?", args),
                show=lambda p: print(plan_text(p, _style()), flush=True))
    except (LockTimeout, StateError) as exc:
        raise CommandError(str(exc), EXIT_FAILED) from exc
    except Interrupted as exc:
        print(interrupted(exc.outcome), file=sys.stderr)
        return EXIT_INTERRUPTED
    if outcome is None:
        if not the_plan.has_changes:
            print_urls(engine.paths.state_db)
            return _degraded_exit(engine)
        return EXIT_OK
    elapsed = time.monotonic() - started
    if outcome.ok:
        print(f"Applied {len(outcome.done)} change(s) in {elapsed:.1f}s.")
        print_urls(engine.paths.state_db)
        return _degraded_exit(engine)
    print(f"\n{len(outcome.failed)} step(s) failed, {len(outcome.skipped)} skipped, {len(outcome.done)} done "
          f"in {elapsed:.1f}s:", file=sys.stderr)
    for rid, message in outcome.failed.items():
        print(f"  {rid}: {message}", file=sys.stderr)
    return EXIT_FAILED


def _degraded_exit(engine: Any) -> int:
    """Applied is not serving: a deployment whose replicas crash-loop or restart fails the `up` that left it so."""
    troubles = engine.degraded()
    for trouble in troubles:
        print(f"  {trouble}", file=sys.stderr)
    if troubles:
        print(f"{len(troubles)} deployment(s) degraded: see `mlspec status` and `mlspec logs`.", file=sys.stderr)
    return EXIT_FAILED if troubles else EXIT_OK


def down(args: argparse.Namespace) -> int:
    from mlspec.cli.down_command import down as local_down

    return local_down(args)


def status(args: argparse.Namespace) -> int:
    from mlspec.backends.local.autoscaler import read_status
    from mlspec.backends.local.degraded import degraded
    from mlspec.backends.local.engine import observed_processes
    from mlspec.backends.local.schedule_state import schedules, summary
    from mlspec.backends.local.state import StateStore
    from mlspec.backends.local.supervisor_start import running
    from mlspec.cli.stacks import announce

    announce(args)
    if target_of(args) == "kubernetes":
        from mlspec.cli.cluster_commands import status as cluster_status

        return cluster_status(args)
    if target_of(args) == "docker":
        from mlspec.cli.docker_commands import status as docker_status

        return docker_status(args)
    engine = local_engine(args)
    if not engine.paths.state_db.exists():
        print("Nothing deployed yet: run `mlspec up`.")
        return EXIT_OK
    store = StateStore(engine.paths.state_db)
    records = store.records()
    processes = observed_processes(store)
    timetables = {row.id: summary(row) for row in schedules(store)}
    troubles = degraded([r for r in records.values() if r.status == "ready"], processes)
    sick = {t.resource for t in troubles}  # shown as 'degraded' in place of 'ready'
    the_plan = engine.plan()
    store.close()
    scaling = {rid.split("/", 1)[1]: found for rid in records if rid.startswith("endpoint/")
               if (found := read_status(engine.paths, rid.split("/", 1)[1]))}
    if args.json:
        print_json({"resources": {r.id: {"status": "degraded" if r.id in sick else r.status, "outputs": r.outputs,
                                          "description": r.spec.get("description", ""), "tags": r.spec.get("tags", {})}
                                  for r in records.values()},
                    "processes": [p.__dict__ for p in processes], "supervisor": running(engine.paths),
                    "degraded": [t.__dict__ for t in troubles],
                    "in_sync": not the_plan.has_changes and not troubles, "autoscale": scaling,
                    "schedules": timetables})
        return EXIT_OK
    width = max((len(r) for r in records), default=10)
    for rid, record in records.items():
        shown = "degraded" if rid in sick else record.status
        print(f"{rid:<{width}}  {shown:<7} {_summary(record.outputs)}")
        if record.spec.get("description"):
            print(f"{'':<{width}}  {record.spec['description']}")
        for name, scaled in scaling.get(rid.split("/", 1)[-1], {}).items() if rid.startswith("endpoint/") else ():
            print(f"{'':<{width}}  {name}: {scaled['current']} replica(s), {scaled['desired']} wanted "
                  f"(autoscale, load {scaled['load']})")
    if timetables:
        print("\nschedules:")
        for rid, timetable in timetables.items():
            print(f"  {rid:<{width}}  {_timetable(timetable)}")
    if processes:
        print(f"\nprocesses (supervisor {'running' if running(engine.paths) else 'NOT running: run mlspec up'}):")
        for p in processes:
            restarts = f", {p.restarts} restart(s), last exit {p.last_exit}" if p.restarts else ""
            print(f"  {p.id:<40} {p.state:<10} pid {p.pid}{restarts}")
    if troubles:
        print("\nDegraded:")
        for trouble in troubles:
            print(f"  {trouble}")
    if any(c.drifted for c in the_plan.changes):
        print("\nWhat runs differs from what was deployed: see `mlspec refresh`; `mlspec up` repairs it.")
    elif the_plan.has_changes:
        print("\nThe spec has changes: see `mlspec plan`.")
    elif not troubles:
        print("\nIn sync with the spec.")
    return EXIT_OK


def _timetable(timetable: dict[str, Any]) -> str:
    """'next 2026-12-03T03:00:00+01:00; last 2026-12-02T03:00:01+01:00 succeeded (run 1a2b3c4d5e6f)'."""
    rule = timetable["schedule"].get("cron") or f"every {timetable['schedule'].get('every'):g}s"
    parts = [f"{rule}: next {timetable['next_run'] or 'none (past end_time)'}"]
    if timetable["running"]:
        parts.append(f"run {timetable['runs']} running since {timetable['last_run']}")
    elif timetable["last_run"]:
        run = f" (MLflow run {timetable['last_run_id'][:12]})" if timetable["last_run_id"] else ""
        error = f": {timetable['last_error']}" if timetable["last_error"] else ""
        parts.append(f"last {timetable['last_run']} {timetable['last_outcome']}{run}{error}")
    if timetable["missed"]:
        parts.append(f"{timetable['missed']} missed run(s) skipped")
    return "; ".join(parts)


def _summary(outputs: dict[str, Any]) -> str:
    if "rows_scored" in outputs:  # a batch endpoint
        return (f"{outputs['rows_scored']} rows scored, {outputs.get('rows_failed', 0)} failed, into "
                f"{outputs.get('output', '?')}  ({outputs.get('model', 'model')} v{outputs.get('version', '?')})")
    if "url" in outputs:
        deployments = ", ".join(f"{n}: v{d['version']}" for n, d in outputs.get("deployments", {}).items())
        return f"{outputs['url']}  ({deployments})"
    if "models" in outputs:
        return f"run {str(outputs.get('run_id'))[:12]}  " + ", ".join(f"{n}:{v}" for n, v in outputs["models"].items())
    if "version" in outputs:
        return f"version {outputs['version']}"
    return ""

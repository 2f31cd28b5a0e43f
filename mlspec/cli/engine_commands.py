"""Commands that change or inspect a deployed workspace: plan, up, down, status, logs."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from mlspec.cli.common import CommandError, confirm, local_engine
from mlspec.cli.output import EXIT_FAILED, EXIT_OK, print_json


def _style() -> Any:
    from mlspec.render.style import Style, use_colour

    return Style(use_colour())


def plan(args: argparse.Namespace) -> int:
    from mlspec.render.plan import plan_markdown, plan_text

    the_plan = local_engine(args, check_target=True).plan()
    if args.json:
        print_json(the_plan.as_dict())
    elif args.markdown:
        print(plan_markdown(the_plan))
    else:
        print(plan_text(the_plan, _style()))
    if the_plan.blockers:
        return EXIT_FAILED
    if args.detailed_exitcode:
        return 2 if the_plan.has_changes else 0
    return EXIT_OK


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
    from mlspec.backends.local.state import LockTimeout, StateError
    from mlspec.render.plan import plan_text

    engine = local_engine(args, check_target=True)
    started = time.monotonic()
    try:
        _, outcome = engine.up(
            confirm=lambda p: confirm("Apply these changes?", args),
            show=lambda p: print(plan_text(p, _style()), flush=True))
    except (LockTimeout, StateError) as exc:
        raise CommandError(str(exc), EXIT_FAILED) from exc
    if outcome is None:
        return EXIT_OK
    elapsed = time.monotonic() - started
    if outcome.ok:
        print(f"Applied {len(outcome.done)} change(s) in {elapsed:.1f}s.")
        _print_endpoints(engine)
        return EXIT_OK
    print(f"\n{len(outcome.failed)} step(s) failed, {len(outcome.skipped)} skipped, {len(outcome.done)} done "
          f"in {elapsed:.1f}s:", file=sys.stderr)
    for rid, message in outcome.failed.items():
        print(f"  {rid}: {message}", file=sys.stderr)
    return EXIT_FAILED


def _print_endpoints(engine: Any) -> None:
    from mlspec.backends.local.state import StateStore

    store = StateStore(engine.paths.state_db)
    for record in store.records().values():
        if record.kind == "Endpoint" and "url" in record.outputs:
            name = record.id.split("/", 1)[1]
            print(f"Endpoint {name}: {record.outputs['url']}/invocations  (mlspec endpoint invoke {name} --data FILE)")
    store.close()


def down(args: argparse.Namespace) -> int:
    from mlspec.backends.local.state import LockTimeout, StateError

    engine = local_engine(args)
    try:
        outcome = engine.down(args.purge, lambda ids: confirm(f"Remove {len(ids)} resource(s)?", args))
    except (LockTimeout, StateError) as exc:
        raise CommandError(str(exc), EXIT_FAILED) from exc
    if outcome is None:
        return EXIT_OK
    kept = "" if args.purge else " Registered models and runs are kept (--purge removes them)."
    print(f"Removed {len(outcome.done)} resource(s).{kept}")
    return EXIT_OK if outcome.ok else EXIT_FAILED


def status(args: argparse.Namespace) -> int:
    from mlspec.backends.local.engine import observed_processes
    from mlspec.backends.local.state import StateStore
    from mlspec.backends.local.supervisor import running

    engine = local_engine(args)
    if not engine.paths.state_db.exists():
        print("Nothing deployed yet: run `mlspec up`.")
        return EXIT_OK
    store = StateStore(engine.paths.state_db)
    records = store.records()
    processes = observed_processes(store)
    the_plan = engine.plan()
    store.close()
    if args.json:
        print_json({"resources": {r.id: {"status": r.status, "outputs": r.outputs,
                                          "description": r.spec.get("description", ""), "tags": r.spec.get("tags", {})}
                                  for r in records.values()},
                    "processes": [p.__dict__ for p in processes], "supervisor": running(engine.paths),
                    "in_sync": not the_plan.has_changes})
        return EXIT_OK
    width = max((len(r) for r in records), default=10)
    for rid, record in records.items():
        print(f"{rid:<{width}}  {record.status:<7} {_summary(record.outputs)}")
        if record.spec.get("description"):
            print(f"{'':<{width}}  {record.spec['description']}")
    if processes:
        print(f"\nprocesses (supervisor {'running' if running(engine.paths) else 'NOT running: run mlspec up'}):")
        for p in processes:
            restarts = f", {p.restarts} restart(s), last exit {p.last_exit}" if p.restarts else ""
            print(f"  {p.id:<40} {p.state:<10} pid {p.pid}{restarts}")
    if any(c.drifted for c in the_plan.changes):
        print("\nWhat runs differs from what was deployed: see `mlspec refresh`; `mlspec up` repairs it.")
    else:
        print("\nIn sync with the spec." if not the_plan.has_changes else "\nThe spec has changes: see `mlspec plan`.")
    return EXIT_OK


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


def logs(args: argparse.Namespace) -> int:
    from mlspec.backends.local.handlers.batch import log_file
    from mlspec.backends.local.state import StateStore

    engine = local_engine(args)
    store = StateStore(engine.paths.state_db) if engine.paths.state_db.exists() else None
    if store is None:
        raise CommandError("nothing deployed yet: run `mlspec up`", EXIT_FAILED)
    records = store.records()
    files: list[str] = []
    for kind in ("job", "endpoint", "compute"):
        record = records.get(f"{kind}/{args.name}")
        if record is None:
            continue
        if kind == "job" and record.outputs.get("log"):
            files.append(record.outputs["log"])
        files += [p.log for p in store.processes(record.id)]
    batch_log = log_file(engine.paths, args.name)  # a batch endpoint's, there from its first run on
    if batch_log.exists() and batch_log not in {Path(f).resolve() for f in files}:
        files.append(str(batch_log))
    store.close()
    if not files:
        raise CommandError(f"no logs for '{args.name}': name a job, an endpoint or a compute instance", EXIT_FAILED)
    for file in dict.fromkeys(files):
        _show(Path(file), args.follow and len(set(files)) == 1, args.tail)
    if args.follow and len(set(files)) > 1:
        raise CommandError("-f follows one log at a time; these are several", EXIT_FAILED)
    return EXIT_OK


def _show(path: Path, follow: bool, tail: int) -> None:
    if not path.exists():
        return
    with path.open(errors="replace") as handle:
        lines = handle.readlines()
        print(f"==> {path} <==")
        sys.stdout.writelines(lines[-tail:] if tail else lines)
        while follow:
            line = handle.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.2)

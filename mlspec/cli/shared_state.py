"""`--state` on plan, up and down: the shared location a plan reads what is deployed from, that up and down lock
and publish to, and that a Pulumi stack keeps its backend in; `mlspec state unlock` breaks a stale lock."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlspec.cli.common import CommandError, load_spec, local_engine, require_local, target_of
from mlspec.cli.output import EXIT_FAILED, EXIT_INVALID, EXIT_OK
from mlspec.cli.stacks import selection_of

PULUMI_TARGETS = ("docker", "kubernetes")


def location_of(args: argparse.Namespace) -> str | None:
    """--state, else $MLSPEC_STATE, else the stack's `state:`; checked against the command's target."""
    from mlspec.spec.state_location import STATE_ENV, location_problem, resolved

    given, named = getattr(args, "state", None), "--state"
    if not given:
        given, named = os.environ.get(STATE_ENV) or None, STATE_ENV
    if given is None:
        found: str | None = selection_of(args).state
        return found
    problem = location_problem(given, target_of(args))
    if problem:
        raise CommandError(f"{named}: {problem}", EXIT_INVALID)
    return resolved(given, Path.cwd())


def pulumi_backend(args: argparse.Namespace) -> str | None:
    """PULUMI_BACKEND_URL for a docker or kubernetes command with a state location (its folder made if missing)."""
    from mlspec.spec.state_location import backend_url, folder_of, scheme_of

    location = location_of(args)
    if location is None:
        return None
    if scheme_of(location) in (None, "file"):
        folder_of(location).mkdir(parents=True, exist_ok=True)
    return backend_url(location)


def _shared(location: str, workspace: str) -> Any:
    from mlspec.backends.local.shared_state import SharedState
    from mlspec.backends.local.shared_store import StoreError, store_at

    try:
        return SharedState(store_at(location), workspace)
    except StoreError as exc:
        raise CommandError(str(exc), EXIT_FAILED) from None


def _read(shared: Any) -> Any:
    from mlspec.backends.local.snapshot import SnapshotError

    try:
        return shared.read()
    except (SnapshotError, OSError) as exc:
        raise CommandError(f"cannot read the shared state: {exc}", EXIT_FAILED) from None


def plan_of(args: argparse.Namespace) -> Any:
    """The report of `mlspec plan` against what is deployed: the local workspace (refreshed), or, with a state
    location, the snapshot published there, touching nothing on this machine; the machine whose workspace
    published it plans against that workspace, which it can refresh."""
    from mlspec.plan.report import Base, build_report

    require_local(args)
    location = location_of(args)
    if location is None:
        return _against_workspace(local_engine(args, check_target=True))
    from mlspec.backends.local.engine import LocalEngine
    from mlspec.backends.local.shared_state import lineage_of

    engine = LocalEngine(load_spec(args, check_target=True))
    shared = _shared(location, engine.graph.spec.workspace.name)
    snapshot = _read(shared)
    holder = _holder_now(shared)
    if holder:
        _say(f"{holder} holds the lock of {shared.where}: what is deployed may change when it ends")
    where = {"location": shared.snapshot_at}
    if snapshot is not None and snapshot.lineage and snapshot.lineage == lineage_of(engine.paths.state_db):
        _say(f"planned against this machine's workspace {engine.paths.root}, which publishes {shared.snapshot_at}")
        return _against_workspace(engine)
    if snapshot is None:
        _say(f"no state published at {shared.snapshot_at}: planned as if nothing were deployed")
        return build_report(engine.plan_published({}), engine.graph, {},
                            Base("state", f"no state published at `{shared.snapshot_at}`", where), "local")
    _say(f"planned against the state published at {snapshot.published_at} by {snapshot.by} ({shared.snapshot_at});"
         " what runs there is not refreshed")
    base = Base("state", f"the state published at {snapshot.published_at} by {snapshot.by}",
                {**where, "published_at": snapshot.published_at, "by": snapshot.by})
    return build_report(engine.plan_published(snapshot.records), engine.graph, snapshot.records, base, "local")


def _holder_now(shared: Any) -> str | None:
    """Who holds the lock, described, when it is held ("a command" when its lock cannot be read); None when free."""
    try:
        if not shared.locked_now():
            return None
    except OSError as exc:
        raise CommandError(f"cannot read the shared state: {exc}", EXIT_FAILED) from None
    holder = shared.holder()
    return holder.describe() if holder else "a command"


def _against_workspace(engine: Any) -> Any:
    """The report of a plan against the local workspace, its folder named as the user would type it."""
    from mlspec.plan.report import Base, build_report

    the_plan, graph, records = engine.plan_with_records()
    root = engine.paths.root
    shown = root.relative_to(Path.cwd()) if root.is_relative_to(Path.cwd()) else root
    return build_report(the_plan, graph, records, Base("workspace", f"the workspace `{shown}`"), "local")


@contextmanager
def sharing(args: argparse.Namespace, engine: Any, command: str) -> Iterator[None]:
    """Around an `up` or `down` with a state location: take its lock first, then, whatever happened (what was
    applied is real, also when a step failed), publish the workspace's records, then release the lock."""
    location = location_of(args)
    if location is None:
        yield
        return
    from mlspec.backends.local.shared_lock import LockHeld

    shared = _shared(location, engine.graph.spec.workspace.name)
    try:
        mine = shared.lock(f"mlspec {command}", getattr(args, "lock_timeout", 0.0))
    except LockHeld as exc:
        raise CommandError(held_message(exc.holder, shared, args), EXIT_FAILED) from None
    except OSError as exc:
        raise CommandError(f"cannot lock the shared state at {shared.where}: {exc}", EXIT_FAILED) from None
    try:
        try:
            problem = shared.adoption_problem(engine.paths.state_db)
        except OSError as exc:
            raise CommandError(f"cannot read the shared state: {exc}", EXIT_FAILED) from None
        if problem:
            raise CommandError(problem, EXIT_FAILED)
        try:
            yield
        except BaseException:
            _publish(shared, engine, quiet=True)
            raise
        _publish(shared, engine, quiet=False)
    finally:
        _release(shared, mine)


def _release(shared: Any, mine: Any) -> None:
    """Release the lock; a store that cannot be reached now leaves it, which `mlspec state unlock` removes."""
    try:
        shared.release(mine)
    except OSError as exc:
        _say(f"could not release the lock {shared.lock_at}: {exc}; `mlspec state unlock` removes it")


def _publish(shared: Any, engine: Any, quiet: bool) -> None:
    """Publish the workspace's records; a failure fails the command (CI would plan against a stale state), unless
    the command already fails for another reason, which it then adds to."""
    if not engine.paths.state_db.exists():
        return
    try:
        snapshot = shared.publish(engine.paths.state_db)
    except OSError as exc:
        message = f"could not publish the state to {shared.snapshot_at}: {exc}; it is stale until the next up"
        if quiet:
            _say(message)
            return
        raise CommandError(message, EXIT_FAILED) from None
    _say(f"published the state ({len(snapshot.records)} resource(s)) to {shared.snapshot_at}")


def held_message(holder: Any, shared: Any, args: argparse.Namespace) -> str:
    """Who holds the lock, and how to wait for it or break it when it is stale."""
    unlock = f"`mlspec state unlock {_same_options(args)}`"
    if holder is None:
        return (f"the shared state at {shared.where} is locked, and its lock {shared.lock_at} cannot be read "
                f"(being written, or damaged): wait with --lock-timeout SECONDS, or remove it with {unlock} --force")
    said = f"the shared state at {shared.where} is locked by {holder.describe()} (lock {holder.id[:12]})"
    if holder.gone():
        return f"{said}; that process has ended without releasing it: {unlock} removes the lock"
    return (f"{said}. Wait for it with --lock-timeout SECONDS; if it ended without releasing the lock (killed, or "
            f"its machine lost), {unlock} removes it, with --force where it ran on another machine")


def _same_options(args: argparse.Namespace) -> str:
    words = [p for p in getattr(args, "paths", []) if p != "."]
    stack = selection_of(args).stack
    if getattr(args, "stack", None) and stack:
        words += ["--stack", stack]
    if getattr(args, "state", None):
        words += ["--state", args.state]
    return shlex.join(words) if words else ""


def _say(line: str) -> None:
    print(f"mlspec: {line}", file=sys.stderr, flush=True)


def unlock(args: argparse.Namespace) -> int:
    """`mlspec state unlock`: remove the lock of a state location whose holder ended without releasing it."""
    from mlspec.backends.local.shared_lock import LockHeld

    if target_of(args) in PULUMI_TARGETS:
        raise CommandError(f"a {target_of(args)} stack's state is Pulumi's backend, which Pulumi locks itself: a stale "
                           "lock of a folder or object-store backend lies in its .pulumi/locks folder")
    location = location_of(args)
    if location is None:
        raise CommandError("no shared state location: pass --state DIR (or s3://bucket/prefix), set MLSPEC_STATE, "
                           "or give the stack a `state:`")
    shared = _shared(location, load_spec(args, check_target=False).spec.workspace.name)
    try:
        removed = shared.unlock(args.force)
    except OSError as exc:
        raise CommandError(f"cannot remove the lock {shared.lock_at}: {exc}", EXIT_FAILED) from None
    except LockHeld as exc:
        if exc.holder is None:
            raise CommandError(f"{shared.lock_at} cannot be read: pass --force to remove it", EXIT_FAILED) from None
        raise CommandError(f"{exc.holder.describe()} holds the lock of {shared.where}, and mlspec cannot tell that "
                           "it has ended (it ran on another machine, or still runs): pass --force once you are sure "
                           "it no longer runs", EXIT_FAILED) from None
    if removed is None and not args.force:
        print(f"The shared state at {shared.where} is not locked.")
    else:
        print(f"Removed the lock of {shared.where}" + (f" held by {removed.describe()}." if removed else "."))
    return EXIT_OK

"""The per-workspace supervisor: keeps declared processes running, restarts crashes with backoff.

Run as `python -P -m mlspec.backends.local.supervisor WORKSPACE_DIR`; `mlspec up` starts it when needed.
It outlives `mlspec up`, reads the desired processes from the state store and records what it observes.
It owns the processes it starts (they carry STARTED_BY=supervisor) and only ever sweeps those: the jobs and
batch runs of an `mlspec up` belong to that `up`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from mlspec.backends.local.paths import OWNER_ONLY_UMASK, WorkspacePaths
from mlspec.backends.local.processes import (
    ID_VAR,
    STARTED_BY_VAR,
    SUPERVISOR,
    WORKSPACE_VAR,
    is_ours,
    stop_group,
    workspace_processes,
)
from mlspec.backends.local.scheduler import Clock, Scheduler, clock_from_env, fire_process, workspace_lock
from mlspec.backends.local.state import ProcessRow, StateError, StateStore
from mlspec.backends.local.wakeup import WakeUp
from mlspec.backends.local.watch import Watch
from mlspec.backends.local.zygotes import ForkedReplica, ZygotePool, reap_strays

TICK = 0.25
MAX_BACKOFF = 30.0
# A process that ran this long before it exited was not crash-looping: its next restart waits the base delay again.
# Kubernetes waits 10 minutes, sized for clusters where a start can take minutes (image pulls); a local replica
# starts in seconds, so twice the longest backoff already tells a steady process from a crash loop, and one crash
# after a day of service costs 1 s, not the 30 s earned by crashes long ago.
RESET_AFTER_S = 2 * MAX_BACKOFF
IDLE_EXIT = 2.0  # with nothing to supervise for this long, exit
SWEEP_EVERY = 5.0  # seconds between looks for processes of ours that the state no longer declares
STATE_GONE_S = 5.0  # a state file missing this long was moved away: what it declared is no longer wanted
BUSY_TIMEOUT_MS = 2000  # a locked state is retried next tick rather than waited on while children crash

Child = subprocess.Popen[bytes] | ForkedReplica  # a process started here, or a replica forked from a zygote


def _definition(row: ProcessRow) -> str:
    """What a row runs: a child started from another definition is replaced, never adopted by it."""
    return json.dumps([row.argv, row.env, row.cwd], sort_keys=True)


def backoff(streak: int) -> float:
    """Seconds before a restart, after `streak` exits in a row: 1, 2, 4, ... up to MAX_BACKOFF."""
    return min(MAX_BACKOFF, 2.0 ** min(streak, 5))


def start_marker(process_id: str, started: float) -> str:
    """The line written to a process's log before each start: what comes after it is that start's output."""
    return f"==> mlspec: {process_id} starting ({started!r})"


class Supervisor:
    def __init__(self, paths: WorkspacePaths, clock: Clock | None = None):
        self.paths = paths
        self.workspace = str(paths.root.resolve())
        self.scheduler = Scheduler(clock or clock_from_env(), fire_process(paths, self.workspace), self.log,
                                   workspace_lock(paths))
        self.store: StateStore | None = None
        self.identity: tuple[int, int] | None = None
        self.children: dict[str, Child] = {}
        self.not_before: dict[str, float] = {}
        self.missing_since: float | None = None
        self.last_sweep = 0.0
        self.trouble: str | None = None
        self.watch = Watch()  # liveness probes and idle instances, answered on a thread of their own
        self.definitions: dict[str, str] = {}  # what each child was started as, to tell a lost write from a change
        self.zygotes = ZygotePool(paths, self.workspace, self.log)

    def log(self, message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    # -- the state, as the file at its path is now -------------------------------------------------------
    def open_store(self) -> StateStore | None:
        """The state store; reopened when its file was replaced (a restored backup); None while it is missing."""
        try:
            info = os.stat(self.paths.state_db)
        except FileNotFoundError:
            self.close_store()
            return None
        identity = (info.st_dev, info.st_ino)
        if self.store is not None and identity == self.identity:
            return self.store
        if self.store is not None:
            self.log("the state file was replaced; reading the new one")
        self.close_store()
        store = StateStore(self.paths.state_db)
        store.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self.store, self.identity = store, identity
        self.last_sweep = 0.0  # what another state declares may differ: look again now
        return store

    def close_store(self) -> None:
        if self.store is not None:
            with contextlib.suppress(sqlite3.Error):
                self.settle()
            with contextlib.suppress(sqlite3.Error):
                self.store.close()
        self.store, self.identity = None, None

    def settle(self) -> None:
        """Move what we wrote out of the write-ahead log and empty it. The log sits beside the state file by name,
        not with it: left full, its pages would be read into a state file restored from a backup (or a new one
        in place of a file moved away), undoing the restore."""
        if self.store is not None:
            self.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- processes ---------------------------------------------------------------------------------
    def ours(self) -> dict[int, str]:
        return workspace_processes(self.workspace, started_by=SUPERVISOR)

    def sweep_orphans(self, store: StateStore) -> None:
        """Stop processes this supervisor (or an earlier one of this workspace) started that no desired row
        declares any more, e.g. a spawn cut short by kill -9, or a state restored from a backup."""
        wanted = {row.id for row in store.processes() if row.desired} | self.scheduler.in_flight(store)
        for pid, process_id in self.ours().items():
            if process_id not in wanted:
                self.log(f"stopping orphan {process_id} (pid {pid})")
                stop_group(pid)
                self.children.pop(process_id, None)
        self.zygotes.sweep()
        # Orphans this subreaper inherited (what a replica had started when it died) that have exited.
        reap_strays({child.pid for child in self.children.values()} | self.zygotes.pids()
                    | {child.pid for child in self.scheduler.children.values()})
        self.last_sweep = time.monotonic()

    def start(self, store: StateStore, row: ProcessRow) -> None:
        self.stop_running(row.id)
        marks = {ID_VAR: row.id, WORKSPACE_VAR: self.workspace, STARTED_BY_VAR: SUPERVISOR}
        Path(row.log).parent.mkdir(parents=True, exist_ok=True)
        started = time.time()
        with open(row.log, "ab") as log:
            log.write((start_marker(row.id, started) + "\n").encode())
            log.flush()
            proc: Child | None = self.zygotes.fork(row, marks)
            if proc is None:
                proc = subprocess.Popen(row.argv, cwd=row.cwd, env={**os.environ, **row.env, **marks}, stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.children[row.id] = proc
        self.definitions[row.id] = _definition(row)
        self.log(f"{'forked' if isinstance(proc, ForkedReplica) else 'started'} {row.id} (pid {proc.pid})")
        store.observe(row.id, pid=proc.pid, started=started, state="running")

    def stop_running(self, process_id: str) -> None:
        """At most one live process per id: one still running under this id (a row re-declared after `up` was
        killed mid-step forgets its pid) is stopped before another starts, or it would be an orphan nobody tracks."""
        child = self.children.pop(process_id, None)
        if child is not None and child.poll() is None:
            stop_group(child.pid)
        for pid, found in self.ours().items():
            if found == process_id:
                self.log(f"stopping the earlier {process_id} (pid {pid})")
                stop_group(pid)

    def exited(self, store: StateStore, row: ProcessRow) -> int | None:
        """The exit code if the process is gone, None while it runs (adopting a child the row lost track of)."""
        child = self.children.get(row.id)
        if child is not None:
            code = child.poll()
            if code is None:
                if row.pid != child.pid:  # recorded before a failed write, or the state was replaced
                    store.observe(row.id, pid=child.pid, state="running")
                return None
            del self.children[row.id]
            return code
        return None if is_ours(row.pid, row.id) else -1

    def note_exit(self, row: ProcessRow, code: int) -> None:
        try:
            with open(row.log, "ab") as log:
                log.write(f"==> mlspec: {row.id} exited with {code}\n".encode())
        except OSError:
            pass

    def tick(self, store: StateStore) -> bool:
        """One reconciliation pass; False when there is nothing left to supervise."""
        rows = store.processes()
        self.act_on_watch(store, rows)
        self.zygotes.tend(rows)  # before any start: the first replica of a kind starts afresh while its zygote warms
        now = time.time()
        for row in rows:
            if not row.desired:
                child = self.children.pop(row.id, None)
                if row.pid and (child is not None or is_ours(row.pid, row.id)):
                    stop_group(row.pid)
                    self.log(f"stopped {row.id}")
                store.forget_process(row.id)
                continue
            if row.pid is None:
                child = self.children.get(row.id)
                if child is not None and child.poll() is None and self.definitions.get(row.id) == _definition(row):
                    store.observe(row.id, pid=child.pid, state="running")  # started; the write had failed
                elif row.state != "stopped" and now >= self.not_before.get(row.id, 0):
                    self.start(store, row)
                continue
            code = self.exited(store, row)
            if code is not None:
                self.note_exit(row, code)
                self.restart_later(store, row, code, f"exited with {code}", now)
            elif row.streak and steady(row, now):
                store.observe(row.id, streak=0)  # it stopped crash-looping: status no longer calls it one
        declared = {row.id for row in rows}
        for process_id, child in list(self.children.items()):
            if process_id not in declared and child.poll() is not None:
                del self.children[process_id]  # its row went with a replaced state; it has been stopped
        return any(row.desired and row.state != "stopped" for row in rows) or bool(self.children)

    def restart_later(self, store: StateStore, row: ProcessRow, code: int, why: str, now: float) -> None:
        streak = 0 if steady(row, now) else row.streak
        delay = backoff(streak)
        self.not_before[row.id] = now + delay
        store.observe(row.id, pid=None, restarts=row.restarts + 1, streak=streak + 1, last_exit=code,
                      state="restarting")
        store.event(row.owner, f"{row.id} {why}; restarting in {delay:.0f}s")
        self.log(f"{row.id} {why}; restarting in {delay:.0f}s")

    def act_on_watch(self, store: StateStore, rows: list[ProcessRow]) -> None:
        """A process that failed its liveness probe is stopped, and restarted like a crash; an idle instance is
        stopped and marked 'stopped', so it stays down until `mlspec compute start`."""
        current = {row.id: row for row in rows}
        for process_id, pid, kind, what in self.watch.verdicts():
            row = current.get(process_id)
            if row is None or row.pid != pid or not row.desired:
                continue  # it changed since the verdict: nothing to act on
            self.children.pop(row.id, None)
            stop_group(pid)
            if kind == "idle":
                store.observe(row.id, pid=None, state="stopped")
                store.event(row.owner, f"{row.id} {what}; stopped")
                self.log(f"{row.id} (pid {pid}) {what}; stopped")
                row.pid, row.state = None, "stopped"
            else:
                self.restart_later(store, row, -signal.SIGTERM, what, time.time())
                row.pid = None
        self.watch.update(rows)

    def stop_everything(self) -> None:
        self.zygotes.stop_all()
        for child in self.children.values():
            if child.poll() is None:
                stop_group(child.pid)
        self.children.clear()
        for pid, process_id in self.ours().items():
            self.log(f"stopping {process_id} (pid {pid})")
            stop_group(pid)

    def step(self) -> bool:
        """Open the state as it is now and reconcile once; True while there is something to look after."""
        store = self.open_store()
        if store is None:
            self.missing_since = self.missing_since or time.monotonic()
            if time.monotonic() - self.missing_since < STATE_GONE_S:
                return True
            self.log(f"the state file {self.paths.state_db} is gone; stopping what it declared")
            self.stop_everything()
            return False
        self.missing_since = None
        if time.monotonic() - self.last_sweep >= SWEEP_EVERY:
            self.sweep_orphans(store)
        changes = store.db.total_changes
        busy = self.tick(store)
        busy = self.scheduler.tick(store) or busy  # armed schedules keep the supervisor up
        if store.db.total_changes != changes:
            self.settle()
        return busy

    def run(self) -> None:
        wakeup = WakeUp(self.paths)
        try:
            self.supervise(wakeup)
        finally:
            wakeup.close()
            self.zygotes.stop_all()

    def supervise(self, wakeup: WakeUp) -> None:
        idle_since: float | None = None
        while True:
            try:
                busy = self.step()
                if self.trouble:
                    self.log("the state is readable again")
                self.trouble = None
            except (sqlite3.Error, StateError, OSError, ValueError) as exc:
                # A locked or unreadable state for a moment (a backup being restored, another program holding
                # it): keep the children running, and read the state afresh next time.
                if str(exc) != self.trouble:
                    self.log(f"cannot use the state now ({exc}); retrying")
                self.trouble = str(exc)
                self.close_store()
                busy = True
            if busy:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_EXIT:
                self.log("nothing to supervise; exiting")
                return
            wakeup.wait(TICK)  # cut short when a process is declared


def steady(row: ProcessRow, now: float) -> bool:
    """Whether the process has run RESET_AFTER_S since its latest start (`now` is wall-clock, as `started` is)."""
    return row.started is not None and now - row.started >= RESET_AFTER_S


def main() -> None:
    os.umask(OWNER_ONLY_UMASK)  # logs, and whatever the processes it starts write, stay their owner's
    paths = WorkspacePaths(Path(sys.argv[1]))
    lock = open(paths.supervisor_lock, "a+")  # noqa: SIM115 - held for the supervisor's lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another supervisor already looks after this workspace
    Supervisor(paths).run()


if __name__ == "__main__":
    main()

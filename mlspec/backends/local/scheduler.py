"""The supervisor's scheduler: starts each armed schedule's run when it is due, one run of a resource at a time.

Time comes from a clock object, so tests drive it. A run starts as its own process (`mlspec.backends.local.fire`),
marked as the supervisor's with the id `schedule/<resource>`; its pid in the schedule's row is the ownership
record that keeps a second run from starting while it lives, across supervisor restarts too.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable
from typing import Protocol

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.processes import ID_VAR, STARTED_BY_VAR, SUPERVISOR, WORKSPACE_VAR, is_ours
from mlspec.backends.local.schedule_state import (
    RUNNING,
    ScheduleRow,
    finish,
    run_id_of,
    schedule_of,
    schedules,
    update,
    utc,
)
from mlspec.backends.local.state import LockTimeout, StateStore, exclusive
from mlspec.backends.local.supervisor_start import python_command
from mlspec.spec.schedule import MISSED_AFTER_S

# A test hook, not a setting: the supervisor's clock runs this many times faster than real time, so a test sees
# an `every: 1m` schedule fire within seconds. Never set it outside tests.
SPEED_VAR = "MLSPEC_TEST_SCHEDULE_SPEED"


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ScaledClock:
    """Real time from the moment it is made, `speed` times faster (the SPEED_VAR test hook)."""

    def __init__(self, speed: float):
        self.speed, self.origin = speed, time.time()

    def now(self) -> float:
        return self.origin + (time.time() - self.origin) * self.speed


def clock_from_env() -> Clock:
    speed = float(os.environ.get(SPEED_VAR) or 1)
    return ScaledClock(speed) if speed != 1 else SystemClock()


Launch = Callable[[ScheduleRow, int], "subprocess.Popen[bytes]"]


def fire_process(paths: WorkspacePaths, workspace: str) -> Launch:
    """How the supervisor starts run number `run` of a schedule: the fire module, logging beside the others."""

    def launch(row: ScheduleRow, run: int) -> subprocess.Popen[bytes]:
        marks = {ID_VAR: run_id_of(row.id), WORKSPACE_VAR: workspace, STARTED_BY_VAR: SUPERVISOR}
        paths.logs.mkdir(parents=True, exist_ok=True)
        with open(log_path(paths, row.id), "ab") as log:
            log.write(f"==> mlspec: scheduled run {run} of {row.id}\n".encode())
            log.flush()
            return subprocess.Popen(python_command("mlspec.backends.local.fire", workspace, row.id, str(run)),
                                    cwd=paths.proc, env={**os.environ, **marks}, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    return launch


def workspace_lock(paths: WorkspacePaths) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """The workspace lock, taken without waiting and marked brief (an `up` starting meanwhile waits a moment)."""
    return lambda: exclusive(paths.lock, 0.0, "the supervisor", brief=True)


def log_path(paths: WorkspacePaths, resource_id: str) -> str:
    return str(paths.logs / f"schedule-{resource_id.replace('/', '-')}.log")


def no_lock() -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


class Scheduler:
    def __init__(self, clock: Clock, launch: Launch, log: Callable[[str], None] = print,
                 lock: Callable[[], contextlib.AbstractContextManager[None]] = no_lock):
        """`lock`: held while a run starts (the workspace lock, briefly): no run starts while an `mlspec up` or
        `down` applies, which may re-run or remove the same resource; a due run waits for the next tick."""
        self.clock, self.launch, self.log, self.lock = clock, launch, log, lock
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def in_flight(self, store: StateStore) -> set[str]:
        """The process ids of the runs going now: the supervisor's sweep leaves them be."""
        return {run_id_of(row.id) for row in schedules(store) if row.pid}

    def tick(self, store: StateStore) -> bool:
        """Start what is due and note what finished; False when no schedule is armed or running."""
        busy = False
        for row in schedules(store):
            if row.pid is not None and not self._finished(store, row):
                busy = True
                continue  # one run at a time: a run due meanwhile waits for this one
            if row.next_run is None:
                continue  # past end_time
            busy = True
            now = self.clock.now()
            if now >= row.next_run:
                try:
                    with self.lock():
                        fresh = schedule_of(store, row.id)  # as the `up` that held the lock may have left it
                        if fresh is not None and fresh.pid is None and fresh.next_run is not None \
                                and now >= fresh.next_run:
                            self._due(store, fresh, now)
                except LockTimeout:
                    pass  # an `up` or `down` is applying: the run starts once it is done
        for resource_id in [r for r in self.children if r not in {row.id for row in schedules(store)}]:
            self.children.pop(resource_id)  # disarmed: the supervisor's sweep stops its process
        return busy

    def _finished(self, store: StateStore, row: ScheduleRow) -> bool:
        """Whether the run in flight has ended; its outcome is recorded if it could not record one itself."""
        child = self.children.get(row.id)
        code = child.poll() if child is not None and child.pid == row.pid else None
        if child is not None and child.pid == row.pid:
            if code is None:
                return False
            self.children.pop(row.id)
        elif is_ours(row.pid, run_id_of(row.id)):  # started by an earlier supervisor of this workspace
            return False
        current = store.db.execute("SELECT last_outcome FROM schedules WHERE id=?", (row.id,)).fetchone()
        if current and current[0] == RUNNING:
            why = f"its process exited with code {code}" if code is not None else "its process is gone"
            finish(store, row.id, row.runs, "failed", None, f"{why} before it recorded an outcome")
        update(store, row.id, pid=None)
        outcome = (current[0] if current and current[0] != RUNNING else "failed")
        store.event(row.id, f"scheduled run {row.runs} {outcome}")
        self.log(f"scheduled run {row.runs} of {row.id} {outcome}")
        return True

    def _due(self, store: StateStore, row: ScheduleRow, now: float) -> None:
        spec = row.spec()
        following = spec.next_after(utc(now), anchor=utc(row.armed))
        after = None if following is None else following.timestamp()
        late = now - float(row.next_run or now)
        if late > MISSED_AFTER_S and spec.missed == "skip":
            update(store, row.id, next_run=after, missed=row.missed + 1)
            store.event(row.id, f"skipped the run due at {utc(float(row.next_run or now)):%Y-%m-%d %H:%M} UTC "
                                f"(missed by {late:.0f}s; missed: skip)")
            self.log(f"{row.id}: skipped a missed run (missed: skip)")
            return
        run = row.runs + 1
        update(store, row.id, runs=run, last_run=now, last_outcome=RUNNING, last_run_id=None, last_error=None,
               next_run=after)
        try:
            child = self.launch(row, run)
        except OSError as error:
            finish(store, row.id, run, "failed", None, f"could not start: {error}")
            self.log(f"could not start scheduled run {run} of {row.id}: {error}")
            return
        self.children[row.id] = child
        update(store, row.id, pid=child.pid)
        caught_up = f" (caught up {late:.0f}s late)" if late > MISSED_AFTER_S else ""
        store.event(row.id, f"scheduled run {run} started{caught_up}")
        self.log(f"started scheduled run {run} of {row.id} (pid {child.pid}){caught_up}")

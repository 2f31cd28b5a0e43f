"""The armed schedules in the workspace state: what each runs, when it runs next, and how its last run went.

A row is the schedule's ownership record too: `pid` is its run in flight (a process whose MLSPEC_PROCESS_ID is
`run_id_of(resource)`), and no second run starts while that process lives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlspec.backends.local.state import StateStore
from mlspec.spec.schedule import Schedule

RUNNING = "running"


@dataclass
class ScheduleRow:
    id: str  # the resource: job/NAME or endpoint/NAME
    schedule: dict[str, Any]  # the spec's schedule, as recorded in the resource's outputs
    launch: dict[str, Any]  # what a run runs (see mlspec.backends.local.schedule_arm)
    armed: float  # when it was (re)armed: an `every` schedule without start_time counts from here
    next_run: float | None  # None: past end_time, nothing more to run
    runs: int = 0  # runs started so far; the one in flight or the last
    last_run: float | None = None
    last_outcome: str | None = None  # running | succeeded | failed
    last_run_id: str | None = None  # the MLflow run of the last run
    last_error: str | None = None
    pid: int | None = None  # the run in flight
    missed: int = 0  # due times skipped under `missed: skip`

    def spec(self) -> Schedule:
        return Schedule.model_validate(self.schedule)


def run_id_of(resource_id: str) -> str:
    """The MLSPEC_PROCESS_ID of a scheduled run of `resource_id`: two slashes, never taken for an `up` step's."""
    return f"schedule/{resource_id}"


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def first_run(schedule: Schedule, now: float) -> float | None:
    due = schedule.next_after(utc(now), anchor=utc(now))
    return None if due is None else due.timestamp()


_COLUMNS = "id, schedule, launch, armed, next_run, runs, last_run, last_outcome, last_run_id, last_error, pid, missed"


def schedules(store: StateStore) -> list[ScheduleRow]:
    rows = store.db.execute(f"SELECT {_COLUMNS} FROM schedules ORDER BY id")
    return [ScheduleRow(r[0], json.loads(r[1]), json.loads(r[2]), *r[3:]) for r in rows]


def schedule_of(store: StateStore, resource_id: str) -> ScheduleRow | None:
    return next((row for row in schedules(store) if row.id == resource_id), None)


def arm(store: StateStore, resource_id: str, schedule: dict[str, Any], launch: dict[str, Any], now: float) -> None:
    """Arm (or re-arm) a resource's schedule. The same schedule keeps its timetable and history, taking the new
    launch (a retrained job's new definition); a changed one starts its timetable again from `now`."""
    current = schedule_of(store, resource_id)
    if current is not None and current.schedule == schedule:
        store.db.execute("UPDATE schedules SET launch=? WHERE id=?", (json.dumps(launch), resource_id))
        return
    due = first_run(Schedule.model_validate(schedule), now)
    if current is None:
        store.db.execute("INSERT INTO schedules (id, schedule, launch, armed, next_run) VALUES (?, ?, ?, ?, ?)",
                         (resource_id, json.dumps(schedule), json.dumps(launch), now, due))
    else:
        store.db.execute("UPDATE schedules SET schedule=?, launch=?, armed=?, next_run=?, missed=0 WHERE id=?",
                         (json.dumps(schedule), json.dumps(launch), now, due, resource_id))
    store.event(resource_id, "schedule armed")


def disarm(store: StateStore, resource_id: str) -> None:
    """No more runs; the supervisor stops a run in flight (its process is no longer declared)."""
    if store.db.execute("DELETE FROM schedules WHERE id=?", (resource_id,)).rowcount:
        store.event(resource_id, "schedule disarmed")


def update(store: StateStore, resource_id: str, **fields: Any) -> None:
    sets = ", ".join(f"{k}=?" for k in fields)
    store.db.execute(f"UPDATE schedules SET {sets} WHERE id=?", (*fields.values(), resource_id))


def finish(store: StateStore, resource_id: str, run: int, outcome: str, run_id: str | None,
           error: str | None) -> None:
    """Record how run number `run` ended (a later run's record is left alone)."""
    store.db.execute("UPDATE schedules SET last_outcome=?, last_run_id=?, last_error=? WHERE id=? AND runs=?",
                     (outcome, run_id, error, resource_id, run))


def summary(row: ScheduleRow) -> dict[str, Any]:
    """What `mlspec status` shows of a schedule: times in UTC ISO 8601 and in the schedule's own zone."""
    spec = row.spec()

    def when(seconds: float | None) -> str | None:
        return None if seconds is None else utc(seconds).astimezone(spec.zone()).isoformat(timespec="seconds")

    return {"schedule": row.schedule, "next_run": when(row.next_run), "last_run": when(row.last_run),
            "last_outcome": row.last_outcome, "last_run_id": row.last_run_id, "last_error": row.last_error,
            "runs": row.runs, "running": row.pid is not None, "missed": row.missed}

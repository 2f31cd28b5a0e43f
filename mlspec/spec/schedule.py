"""Recurring runs: the `schedule` field of jobs and batch endpoints, and when a schedule is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mlspec.spec.base import Seconds, Strict

# A run starting this long after its time counts as missed (the machine was off, the scheduler down, or the
# previous run still going): `missed: skip` drops it. Kubernetes' startingDeadlineSeconds for `skip`.
MISSED_AFTER_S = 60.0
MIN_EVERY_S = 60.0  # the finest period every target keeps (a Kubernetes CronJob's resolution is a minute)
SCHEDULED_TAG = "mlspec.scheduled"  # "true" on the MLflow run of every scheduled run, whatever the target
# Cron syntax that every target reads the same: numbers, names, `*`, ranges, steps and lists in five fields.
# cronsim also reads L, W, # and a sixth (seconds) field, which a Kubernetes CronJob does not.
_NOT_PORTABLE = ("L", "W", "#")
CRON_HELP = ("five fields: minute hour day-of-month month day-of-week, e.g. '0 3 * * *' (03:00 every day) or "
             "'*/15 * * * 1-5' (every 15 minutes on weekdays)")


def check_cron(expression: str) -> str:
    """The expression, or a ValueError saying what is wrong and how it is written."""
    from cronsim import CronSim, CronSimError

    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"'{expression}' has {len(fields)} field{'s' * (len(fields) != 1)}; a cron expression has "
                         f"{CRON_HELP}")
    # L and W in the day of month, L and # in the day of week (whose names hold no L): never a name's letters.
    odd = [mark for mark in _NOT_PORTABLE if mark in fields[2].upper() or (mark != "W" and mark in fields[4].upper())]
    if odd:
        raise ValueError(f"'{expression}' uses {', '.join(odd)}, which Kubernetes CronJobs do not read; write "
                         f"{CRON_HELP}")
    try:
        CronSim(expression, datetime(2000, 1, 1))
    except CronSimError as error:
        raise ValueError(f"'{expression}' is not a valid cron expression ({error}); write {CRON_HELP}") from None
    return " ".join(fields)


class Schedule(Strict):
    """Run again on a timetable: `cron` (with a `timezone`) or `every` a fixed period."""

    cron: str | None = Field(None, description="When to run, as a cron expression: " + CRON_HELP + ".")
    every: Seconds | None = Field(None, description="Or run at a fixed period, e.g. '1h' or '30m' (at least a "
                                                    "minute), counted from start_time or from `mlspec up`.")
    timezone: str = Field("UTC", description="IANA time zone the cron expression (and a start or end time given "
                                             "without an offset) is read in, e.g. Europe/Paris.")
    start_time: datetime | None = Field(None, description="No run before this time (ISO 8601).")
    end_time: datetime | None = Field(None, description="No run from this time on (ISO 8601).")
    missed: Literal["run_once", "skip"] = Field(
        "run_once", description="Runs missed while nothing could start them (the machine was off): run_once runs "
                                "once when it can, however many were missed; skip waits for the next time.")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @field_validator("every")
    @classmethod
    def _every(cls, value: float | None) -> float | None:
        if value is not None and value < MIN_EVERY_S:
            raise ValueError(f"every {value:g}s is shorter than a minute; use '1m' or more (or a cron expression)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            import difflib

            close = difflib.get_close_matches(value, sorted(available_timezones()), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ValueError(f"unknown time zone '{value}'; {hint}use an IANA name such as 'UTC' or "
                             "'Europe/Paris'") from None
        return value

    @field_validator("end_time")
    @classmethod
    def _after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("start_time")
        zone = ZoneInfo(info.data.get("timezone") or "UTC")
        if value is not None and start is not None:
            end_at, start_at = (t if t.tzinfo else t.replace(tzinfo=zone) for t in (value, start))
            if end_at <= start_at:
                raise ValueError(f"end_time ({end_at.isoformat()}) is not after start_time ({start_at.isoformat()}); "
                                 "move end_time later or remove it")
        return value

    @model_validator(mode="after")
    def _one_rule(self) -> Schedule:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give cron (e.g. cron: '0 3 * * *') or every (e.g. every: 1h), exactly one of them")
        return self

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _aware(self, moment: datetime | None) -> datetime | None:
        if moment is None or moment.tzinfo is not None:
            return moment
        return moment.replace(tzinfo=self.zone())

    def window(self) -> tuple[datetime | None, datetime | None]:
        """start_time and end_time as aware datetimes (one without an offset is read in `timezone`)."""
        return self._aware(self.start_time), self._aware(self.end_time)

    def next_after(self, moment: datetime, anchor: datetime) -> datetime | None:
        """The first run strictly after `moment` (aware), or None once end_time is reached. `anchor`: when an
        `every` schedule without a start_time counts from (the time it was armed)."""
        start, end = self.window()
        if start is not None and moment < start:
            moment = start - timedelta(microseconds=1)  # the start itself may be a run
        if self.every is not None:
            origin = start or anchor
            period = timedelta(seconds=self.every)
            steps = max(0, (moment - origin) // period + 1)
            due = origin + steps * period
            if start is None and due <= anchor:
                due = anchor + period  # armed by `up`, which has just run it: the first run is a period later
        else:
            from cronsim import CronSim

            # cronsim walks in the zone's wall-clock time: a time skipped by a DST change runs when the clock
            # resumes, a repeated one runs once (as cron does).
            due = next(CronSim(self.cron or "", moment.astimezone(self.zone())))
        if end is not None and due >= end:
            return None
        return due.astimezone(UTC)

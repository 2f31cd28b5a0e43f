"""A scheduled training job's CronJob: the job's own pod template, on the schedule's timetable.

It stands beside the Job that runs at apply (as `mlspec up` runs a job, then its schedule re-runs it), named by
the same content hash, so a changed job replaces its CronJob too; a changed schedule alone updates it in place.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from mlspec.backends.pulumi.kubernetes.meta import Object, dns_name, k8s_object
from mlspec.backends.pulumi.model import JobModel
from mlspec.spec.schedule import MISSED_AFTER_S, Schedule

HASH_IN_NAME = 10
NAME_ROOM = 52 - HASH_IN_NAME - 1  # a CronJob's name leaves 11 characters for the Jobs it creates
SCHEDULED_CONTRACT = "scheduled.json"  # the contract the CronJob's pods run: the job's, tagged as scheduled


def cron_job_name(job: JobModel) -> str:
    return f"{dns_name(job.name)[:NAME_ROOM].rstrip('-')}-{job.content_hash[:HASH_IN_NAME]}"


def cron_schedule(schedule: Schedule) -> str:
    """The CronJob's schedule: the cron expression, or a period as cron where it divides an hour or a day."""
    if schedule.cron is not None:
        return schedule.cron
    seconds = int(schedule.every or 0)
    minutes, hours = seconds // 60, seconds // 3600
    if seconds % 60 == 0 and minutes < 60 and 60 % minutes == 0:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if seconds % 3600 == 0 and hours < 24 and 24 % hours == 0:
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    if seconds == 86400:
        return "0 0 * * *"
    return f"@every {seconds}s"


def suspended(schedule: Schedule, now: datetime | None = None) -> bool:
    """Whether `now` (compile time) lies outside [start_time, end_time): Kubernetes has no start or end date."""
    now = now or datetime.now(UTC)
    start, end = schedule.window()
    return (start is not None and now < start) or (end is not None and now >= end)


def cron_job(job: JobModel, workload: Object, contract: str, now: datetime | None = None) -> Object:
    """The CronJob that re-runs `workload` (the job's Job) on its schedule, its pods running `contract`'s
    scheduled twin. Forbid: a run due while the last still goes is not started beside it."""
    schedule = job.schedule
    assert schedule is not None
    template = copy.deepcopy(workload["spec"])
    for container in template["template"]["spec"]["containers"]:
        container["command"] = [f"{contract.rsplit('/', 1)[0]}/{SCHEDULED_CONTRACT}" if part == contract else part
                                for part in container["command"]]
    meta = copy.deepcopy(workload["metadata"])
    meta["name"] = cron_job_name(job)
    spec: Object = {"schedule": cron_schedule(schedule), "concurrencyPolicy": "Forbid",
                    "suspend": suspended(schedule, now), "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
                    "jobTemplate": {"metadata": {"labels": dict(meta.get("labels", {}))}, "spec": template}}
    if schedule.cron is not None:
        spec["timeZone"] = schedule.timezone
    if schedule.missed == "skip":
        spec["startingDeadlineSeconds"] = int(MISSED_AFTER_S)
    return k8s_object("batch/v1", "CronJob", meta, spec=spec)

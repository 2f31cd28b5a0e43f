"""Waiting for supervised processes to become healthy, failing fast with their own fresh log when they crash."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

from mlspec.backends.local.context import Context, StepFailed
from mlspec.backends.local.state import ProcessRow
from mlspec.backends.local.supervisor import start_marker
from mlspec.backends.local.supervisor_start import SupervisorFailed, ensure_running, running
from mlspec.runtime.sockets import http_status, is_unix

SUPERVISOR_CHECK_S = 1.0  # how often a wait makes sure the supervisor it relies on is still there


def healthy(url: str, timeout: float = 1.0) -> bool:
    """200 from GET `url`: http://HOST:PORT/PATH, or unix:/SOCKET:/PATH for a replica on a Unix socket."""
    if is_unix(url):
        return http_status(url, timeout) == 200
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_output(row: ProcessRow, lines: int = 12) -> str:
    """The last lines a process wrote since its latest start (never an earlier run's lines from the same log)."""
    if row.started is None:
        return "    (it has not been started yet)"
    try:
        text = Path(row.log).read_text(errors="replace").splitlines()
    except OSError:
        return "    (it wrote nothing)"
    marker = start_marker(row.id, row.started)
    if marker not in text:
        return "    (it wrote nothing)"
    own = text[len(text) - text[::-1].index(marker):]
    return "\n".join(f"    {line}" for line in own[-lines:]) or "    (it wrote nothing)"


def wait_healthy(ctx: Context, process_ids: list[str], deadline_s: float, successes: int = 1) -> None:
    """Block until every process answers its health URL with 200 `successes` times in a row (polled every 0.1 s);
    a crash while waiting or the deadline is a StepFailed.

    The supervisor starts and restarts them: if it is gone meanwhile, it is started again. A process already
    restarting (in its backoff after an earlier crash) is waited for, not failed at once: only a crash seen during
    this wait is this start's failure.
    """
    pending = set(process_ids)
    crashes: dict[str, int] = {}  # restarts per process when first seen: more means it crashed while waited for
    streak = dict.fromkeys(process_ids, 0)
    deadline = time.monotonic() + deadline_s
    checked = time.monotonic()
    while pending:
        if ctx.stop.is_set():
            raise StepFailed("interrupted while waiting for " + ", ".join(sorted(pending)) + " to become healthy")
        rows = {row.id: row for row in ctx.store.processes() if row.id in pending}
        for process_id in list(pending):
            row = rows.get(process_id)
            if row is None:
                raise StepFailed(f"{process_id} is no longer wanted; another apply changed it")
            crashes.setdefault(process_id, row.restarts)  # a row this apply declared starts at 0
            # Only once the supervisor runs this row's process: before that, whatever answers on the port is the
            # process it replaces (stopped just before this one starts).
            if row.health and row.pid is not None and row.state == "running" and healthy(row.health):
                streak[process_id] += 1
                if streak[process_id] >= successes:
                    pending.discard(process_id)
                continue
            streak[process_id] = 0
            if row.restarts > crashes[process_id]:
                raise StepFailed(f"{process_id} exited with {row.last_exit} before becoming healthy; its output:\n"
                                 f"{start_output(row)}\n  full log: {row.log}")
        if pending and time.monotonic() > deadline:
            row = rows[next(iter(pending))]
            raise StepFailed(f"{row.id} did not become healthy within {deadline_s:.0f}s; its output:\n"
                             f"{start_output(row)}\n  full log: {row.log}")
        if pending and time.monotonic() - checked > SUPERVISOR_CHECK_S:
            checked = time.monotonic()
            if not running(ctx.paths):
                try:
                    ensure_running(ctx.paths)
                except SupervisorFailed as exc:
                    raise StepFailed(str(exc)) from None
        if pending:
            time.sleep(0.1)

"""Waiting for supervised processes to become healthy, failing fast with their log when they crash."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

from mlspec.backends.local.context import Context, StepFailed


def healthy(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def log_tail(path: str, lines: int = 12) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log yet)"
    return "\n".join(f"    {line}" for line in text[-lines:])


def wait_healthy(ctx: Context, process_ids: list[str], deadline_s: float) -> None:
    """Block until every process answers its health URL with 200; a crash or the deadline is a StepFailed."""
    pending = set(process_ids)
    deadline = time.monotonic() + deadline_s
    while pending:
        if ctx.stop.is_set():
            raise StepFailed("interrupted while waiting for " + ", ".join(sorted(pending)) + " to become healthy")
        rows = {row.id: row for row in ctx.store.processes() if row.id in pending}
        for process_id in list(pending):
            row = rows.get(process_id)
            if row is None:
                raise StepFailed(f"{process_id} is no longer wanted; another apply changed it")
            if row.health and healthy(row.health):
                pending.discard(process_id)
            elif row.restarts > 0:
                raise StepFailed(f"{process_id} exited with {row.last_exit} before becoming healthy; its log:\n"
                                 f"{log_tail(row.log)}\n  full log: {row.log}")
        if pending and time.monotonic() > deadline:
            row = rows[next(iter(pending))]
            raise StepFailed(f"{row.id} did not become healthy within {deadline_s:.0f}s; its log:\n"
                             f"{log_tail(row.log)}")
        if pending:
            time.sleep(0.1)

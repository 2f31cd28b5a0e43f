"""One-line summaries of an apply that did not run to its end."""

from __future__ import annotations

from typing import Any


def interrupted(outcome: Any) -> str:
    """What a Ctrl-C left: what completed (recorded), what was stopped, and what the next `up` does."""
    parts = [f"{len(outcome.done)} step(s) completed and recorded"]
    if outcome.stopped:
        parts.append(f"stopped {', '.join(outcome.stopped)} (a job's MLflow run is marked KILLED)")
    if outcome.failed:
        parts.append(f"{len(outcome.failed)} failed")
    if outcome.not_started:
        parts.append(f"{len(outcome.not_started)} not started")
    return (f"mlspec: interrupted: {'; '.join(parts)}. The lock is released; the next `mlspec up` plans again and "
            "runs only what is not recorded as done.")


def hard_stopped(killed: int) -> str:
    return (f"stopped at once: killed {killed} step process(es). Steps completed before are recorded; the next "
            "`mlspec up` marks the interrupted MLflow runs KILLED and runs what is not recorded as done.")

"""Degraded endpoints: deployments whose replicas crash-loop or are restarting, with the reason from their logs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mlspec.backends.local.health import healthy
from mlspec.backends.local.state import ProcessRow, StateStore
from mlspec.plan import Record

CRASH_LOOP = 3  # exits in a row, each before the process had run long enough to reset its backoff
SETTLE_S = 30.0  # how long `up` waits for a restarting replica: past a few backoffs and starts, a loop is a loop
TAIL_BYTES = 64 * 1024  # the end of a log is where its last start said why it stopped
SERVER_ERROR = "mlspec-serve: error: "  # how the scoring server states why it gives up (an integrity check, say)


@dataclass(frozen=True)
class Degraded:
    """One deployment (or an endpoint's gateway, as deployment "gateway") that does not serve as declared."""

    resource: str
    deployment: str
    reason: str

    def __str__(self) -> str:
        return f"{self.resource} deployment '{self.deployment}' is degraded: {self.reason}"


def trouble(row: ProcessRow) -> str | None:
    """What is wrong with one supervised process, None when nothing is."""
    if not row.desired or row.state == "stopped":
        return None
    if row.streak >= CRASH_LOOP:
        return f"crash-looping (exited {row.streak} times in a row, last with {row.last_exit})"
    if row.state == "restarting":
        return f"restarting (exited with {row.last_exit})"
    if row.streak and not (row.health and healthy(row.health, timeout=0.5)):
        return f"starting again (exited with {row.last_exit})"  # between crashes of a loop, or recovering
    return None


def last_words(log: str) -> str:
    """Why a process stopped, in its own words: the scoring server's error line, else its last line of output."""
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, Path(log).stat().st_size - TAIL_BYTES))
            lines = handle.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    own = [line.strip() for line in lines if line.strip() and not line.startswith("==> mlspec:")]
    for line in reversed(own):
        if line.startswith(SERVER_ERROR):
            return line[len(SERVER_ERROR):]
    return own[-1] if own else ""


def _served(record: Record) -> dict[str, list[str]]:
    """Process ids per deployment of an online endpoint's record, its gateway under "gateway"."""
    if record.kind != "Endpoint" or "url" not in record.outputs:
        return {}
    served = {name: list(d.get("processes", [])) for name, d in record.outputs.get("deployments", {}).items()}
    return {**served, "gateway": [f"{record.id}/gateway"]}


def degraded(records: list[Record], rows: list[ProcessRow]) -> list[Degraded]:
    """Each deployment with a replica that crash-loops or is restarting, naming the replica and its reason."""
    wanted = {row.id: row for row in rows if row.desired}
    found = []
    for record in records:
        for name, process_ids in _served(record).items():
            reasons = []
            for process_id in process_ids:
                row = wanted.get(process_id)
                what = trouble(row) if row else None
                if row is not None and what:
                    words = last_words(row.log)
                    label = "gateway" if name == "gateway" else f"replica {process_id.rsplit('/', 1)[1]}"
                    reasons.append(f"{label} is {what}" + (f": {words}" if words else ""))
            if reasons:
                found.append(Degraded(record.id, name, "; ".join(reasons)))
    return found


def _unsettled(row: ProcessRow) -> bool:
    """A process between a crash and a verdict: restarting, or restarted and not yet answering its health URL."""
    return row.streak < CRASH_LOOP and trouble(row) is not None


def settled(store: StateStore, wait_s: float, poll_s: float = 0.2) -> list[Degraded]:
    """The degraded deployments, after waiting (up to `wait_s`) for restarting processes to come back or to
    crash-loop: a replica restarting after one crash is not yet a verdict."""
    deadline = time.monotonic() + wait_s
    while True:
        records = [r for r in store.records().values() if r.status == "ready"]
        rows = store.processes()
        served = {pid for record in records for ids in _served(record).values() for pid in ids}
        if time.monotonic() >= deadline or not any(_unsettled(r) for r in rows if r.desired and r.id in served):
            return degraded(records, rows)
        time.sleep(poll_s)

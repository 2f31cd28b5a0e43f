"""Health of supervised processes: waiting for them to become healthy (failing fast with their log when they
crash), and watching them afterwards for the supervisor (liveness probes, idle compute instances)."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlspec.runtime.probing import ProbeRunner, ProbeSettings, http_get

if TYPE_CHECKING:
    from mlspec.backends.local.context import Context
    from mlspec.backends.local.state import ProcessRow


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


def wait_healthy(ctx: Context, process_ids: list[str], deadline_s: float, successes: int = 1) -> None:
    """Block until every process answers its health URL with 200 `successes` times in a row (polled every 0.1 s);
    a crash or the deadline is a StepFailed."""
    pending = set(process_ids)
    streak = dict.fromkeys(process_ids, 0)
    deadline = time.monotonic() + deadline_s
    while pending:
        rows = {row.id: row for row in ctx.store.processes() if row.id in pending}
        for process_id in list(pending):
            row = rows.get(process_id)
            if row is None:
                raise _step_failed(f"{process_id} is no longer wanted; another apply changed it")
            # Only once the supervisor runs this row's process: before that, whatever answers on the port is the
            # process it replaces (stopped just before this one starts).
            if row.health and row.pid is not None and row.state == "running" and healthy(row.health):
                streak[process_id] += 1
                if streak[process_id] >= successes:
                    pending.discard(process_id)
                continue
            streak[process_id] = 0
            if row.restarts > 0:
                raise _step_failed(f"{process_id} exited with {row.last_exit} before becoming healthy; its log:\n"
                                 f"{log_tail(row.log)}\n  full log: {row.log}")
        if pending and time.monotonic() > deadline:
            row = rows[next(iter(pending))]
            raise _step_failed(f"{row.id} did not become healthy within {deadline_s:.0f}s; its log:\n"
                             f"{log_tail(row.log)}")
        if pending:
            time.sleep(0.1)


def _step_failed(message: str) -> Exception:
    from mlspec.backends.local.context import StepFailed  # not at import: the supervisor never needs the graph

    return StepFailed(message)


Verdict = tuple[str, int, str, str]  # (process id, pid, "liveness" | "idle", what happened)


class Watch:
    """Liveness probes and idle checks of the supervisor's running processes, on a thread of their own so a hung
    process never stalls supervision; the supervisor takes the verdicts each tick and acts on them."""

    def __init__(self) -> None:
        self._verdicts: queue.SimpleQueue[Verdict] = queue.SimpleQueue()
        self._liveness = ProbeRunner(lambda key, ok: self._changed(key, ok, "liveness"))
        self._idle = ProbeRunner(lambda key, ok: self._changed(key, ok, "idle"), probe=jupyter_active)
        self._started = False

    def update(self, rows: list[ProcessRow]) -> None:
        """Watch exactly the running processes whose policy asks for it; a restarted one starts over."""
        liveness: dict[str, tuple[str, ProbeSettings, bool]] = {}
        idle: dict[str, tuple[str, ProbeSettings, bool]] = {}
        for row in rows:
            if not row.desired or row.pid is None or row.state != "running":
                continue
            key = json.dumps([row.id, row.pid])
            if probe := row.policy.get("liveness"):
                settings = {k: v for k, v in probe.items() if k != "url"}
                liveness[key] = (probe["url"], ProbeSettings.parse(settings, "liveness"), True)
            if idle_policy := row.policy.get("idle"):
                seconds = float(idle_policy["seconds"])
                # ok = "active": one idle answer stops it; checked a few times within the allowed idle time
                idle[key] = (f"{idle_policy['url']}#{seconds}",
                             ProbeSettings(initial_delay=0, period=min(30.0, max(0.5, seconds / 5)), timeout=5,
                                           failure_threshold=1, success_threshold=1), True)
        if (liveness or idle) and not self._started:
            self._started = True
            threading.Thread(target=asyncio.run, args=(self._run(),), name="watch", daemon=True).start()
        self._liveness.set_targets(liveness)
        self._idle.set_targets(idle)

    async def _run(self) -> None:
        await asyncio.gather(self._liveness.run(), self._idle.run())

    def verdicts(self) -> list[Verdict]:
        found = []
        while not self._verdicts.empty():
            found.append(self._verdicts.get_nowait())
        return found

    def _changed(self, key: str, ok: bool, kind: str) -> None:
        if ok:
            return
        process_id, pid = json.loads(key)
        if kind == "liveness":
            state = self._liveness.state(key)
            what = f"failed its liveness probe {state.failures if state else 'several'} times in a row"
        else:
            what = "was idle longer than idle_time_before_shutdown"
        self._verdicts.put((process_id, pid, kind, what))


async def jupyter_active(url: str, timeout: float) -> bool:
    """Whether a JupyterLab server had activity within the allowed idle time or runs a busy kernel. `url` is its
    /api/status URL with the token, then '#SECONDS'. These requests do not count as activity themselves."""
    status_url, _, seconds = url.rpartition("#")
    status, body = await http_get(status_url, timeout)
    if status != 200:
        return True  # not answering is for liveness to judge, not a reason to call it idle
    try:
        last = datetime.fromisoformat(json.loads(body)["last_activity"])
    except (ValueError, KeyError, TypeError):
        return True
    if (datetime.now(UTC) - last).total_seconds() < float(seconds):
        return True
    kernels_url = status_url.replace("/api/status", "/api/kernels", 1) + "&no_track_activity=1"
    status, body = await http_get(kernels_url, timeout)
    kernels: Any = json.loads(body) if status == 200 else []
    return any(kernel.get("execution_state") == "busy" for kernel in kernels)

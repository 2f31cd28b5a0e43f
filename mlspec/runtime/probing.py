"""Liveness and readiness probes: HTTP GETs on a schedule, counted against failure and success thresholds.

One runner serves both users: the gateway (readiness: a replica leaves the rotation after `failure_threshold`
failures in a row and re-enters after `success_threshold` successes) and the local supervisor (liveness: a replica
that fails `failure_threshold` probes in a row is restarted). The runner is an asyncio task; the supervisor,
which is not async, runs it on a thread of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mlspec.runtime.sockets import is_unix, split_url, unix_path

TICK_S = 0.02  # the runner's resolution: probe times are rounded up to it
SUSPECT_PERIOD_S = 0.1  # how often a target reported down by its traffic is probed until it passes again
IDLE_TICK_S = 0.5  # the longest the runner sleeps: how soon it notices new targets
# On every answer of a server told to stop: it is leaving, so a front end sends it nothing more (it still answers
# what it is sent until it closes its port, and finishes what it holds).
DRAINING_HEADER = b"x-mlspec-draining"
LIVENESS_PATH = "/v2/health/live"  # the scoring server's live route: 200 as long as its event loop answers


@dataclass(frozen=True)
class ProbeSettings:
    """The spec's Probe, as plain numbers (seconds)."""

    initial_delay: float = 10.0
    period: float = 10.0
    timeout: float = 2.0
    failure_threshold: int = 30
    success_threshold: int = 1

    @classmethod
    def parse(cls, data: Any, where: str) -> ProbeSettings:
        """From a JSON object (a gateway config or a process row); ValueError names what is wrong."""
        if not isinstance(data, dict) or set(data) - set(cls.__dataclass_fields__):
            raise ValueError(f"{where} must be an object with {', '.join(cls.__dataclass_fields__)}")
        settings = cls(**data)
        numbers = (settings.initial_delay, settings.period, settings.timeout)
        if any(not isinstance(n, int | float) or isinstance(n, bool) or n < 0 for n in numbers) \
                or settings.period <= 0 or settings.timeout <= 0:
            raise ValueError(f"{where}: initial_delay, period and timeout must be non-negative seconds "
                             "(period and timeout above 0)")
        if any(not isinstance(n, int) or isinstance(n, bool) or n < 1
               for n in (settings.failure_threshold, settings.success_threshold)):
            raise ValueError(f"{where}: failure_threshold and success_threshold must be integers of at least 1")
        return settings


class ProbeState:
    """Consecutive outcomes of one target's probe; `passing` flips only when a threshold is reached."""

    __slots__ = ("failures", "passing", "settings", "successes")

    def __init__(self, settings: ProbeSettings, passing: bool = True) -> None:
        self.settings = settings
        self.passing = passing
        self.failures = 0
        self.successes = 0

    def record(self, ok: bool) -> bool:
        """Count one outcome; True when `passing` changed."""
        if ok:
            self.failures = 0
            self.successes += 1
            if not self.passing and self.successes >= self.settings.success_threshold:
                self.passing = True
                return True
        else:
            self.successes = 0
            self.failures += 1
            if self.passing and self.failures >= self.settings.failure_threshold:
                self.passing = False
                return True
        return False


async def http_get(url: str, timeout: float) -> tuple[int, bytes]:
    """GET `url` (http://HOST:PORT/PATH?QUERY, or unix:/SOCKET:/PATH) within `timeout` seconds: (status, body);
    (0, b"") when there is no answer in time."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            if is_unix(url):
                address, target = split_url(url)
                netloc = "localhost"
                reader, writer = await asyncio.open_unix_connection(unix_path(address))
            else:
                parts = urlsplit(url)
                target, netloc = (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), parts.netloc
                reader, writer = await asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 80)
            writer.write(b"GET %s HTTP/1.1\r\nhost: %s\r\nconnection: close\r\n\r\n" % (
                target.encode(), netloc.encode()))
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((line.split(b":", 1)[1] for line in head.lower().split(b"\r\n")
                           if line.startswith(b"content-length:")), None)
            body = await (reader.readexactly(int(length)) if length is not None else reader.read())
        status = head[9:12]
        return (int(status), body) if status.isdigit() else (0, b"")
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
        return 0, b""
    finally:
        if writer is not None:
            writer.close()


async def http_ok(url: str, timeout: float) -> bool:
    """A 2xx answer to GET `url` within `timeout` seconds."""
    status, _ = await http_get(url, timeout)
    return 200 <= status < 300


Change = Callable[[str, bool], None]  # (target key, passing now)


class ProbeRunner:
    """Probes every target on its own schedule; `on_change` hears each crossing of a threshold.

    Targets are replaced whole with `set_targets` (key -> (url, settings, passing at first)): a kept key keeps
    its counts and schedule, a new one starts with its initial delay."""

    def __init__(self, on_change: Change, probe: Callable[[str, float], Any] = http_ok) -> None:
        self.on_change = on_change
        self._probe = probe
        self._wanted: dict[str, tuple[str, ProbeSettings, bool]] = {}
        self._states: dict[str, ProbeState] = {}
        self._due: dict[str, float] = {}
        self._running: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._suspects: set[str] = set()  # failing because traffic found them down: probed often until they pass

    def set_targets(self, targets: dict[str, tuple[str, ProbeSettings, bool]]) -> None:
        """Thread-safe: the dict is swapped in whole and read by the runner on its next tick."""
        self._wanted = dict(targets)

    def suspect(self, key: str) -> bool:
        """Traffic found the target down (it refused a connection): it fails now, without waiting for its
        probe's failure threshold, and is probed every SUSPECT_PERIOD_S until it passes again (success_threshold
        times). False when the key is not probed (nothing to bring it back)."""
        state = self._states.get(key)
        if state is None:
            return False
        state.passing, state.successes, state.failures = False, 0, 0
        self._suspects.add(key)
        self._due[key] = min(self._due.get(key, 0.0), time.monotonic() + SUSPECT_PERIOD_S)
        return True

    def state(self, key: str) -> ProbeState | None:
        return self._states.get(key)

    def _sync(self, now: float) -> None:
        wanted = self._wanted
        for key in [k for k in self._states if k not in wanted]:
            del self._states[key]
            self._due.pop(key, None)
            self._suspects.discard(key)
        for key, (_, settings, passing) in wanted.items():
            state = self._states.get(key)
            if state is None or state.settings != settings:
                starts_passing = passing if state is None else state.passing
                self._states[key] = ProbeState(settings, starts_passing)
                if starts_passing:
                    self._due[key] = now + settings.initial_delay
                else:  # out of rotation until it passes: probed often from now on, so it joins once it is ready
                    self._suspects.add(key)
                    self._due[key] = now

    async def run(self) -> None:
        while True:
            now = time.monotonic()
            self._sync(now)
            for key, due in self._due.items():
                if due <= now and key not in self._running:
                    url, settings, _ = self._wanted[key]
                    self._due[key] = now + (SUSPECT_PERIOD_S if key in self._suspects else settings.period)
                    self._running.add(key)
                    task = asyncio.get_running_loop().create_task(self._one(key, url, settings))
                    self._tasks.add(task)  # held until done: the loop keeps only weak references
                    task.add_done_callback(self._tasks.discard)
            # Asleep until the next probe is due (new targets are seen within IDLE_TICK_S): no busy polling.
            due = min(self._due.values(), default=now + IDLE_TICK_S)
            await asyncio.sleep(min(max(due - time.monotonic(), TICK_S), IDLE_TICK_S))

    async def _one(self, key: str, url: str, settings: ProbeSettings) -> None:
        try:
            ok = bool(await self._probe(url, settings.timeout))
        finally:
            self._running.discard(key)
        state = self._states.get(key)
        if state is not None and state.settings == settings and state.record(ok):
            if state.passing:
                self._suspects.discard(key)
            self.on_change(key, state.passing)

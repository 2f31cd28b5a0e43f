"""Requests held for a deployment that has no ready replica yet (scaled to zero, or its first replica starting).

As Knative's activator does: a deployment marked `hold` in the config keeps a request that finds no ready
replica, up to the request timeout, instead of answering 503 at once; the count of held requests is the demand
signal an autoscaler reads (it starts a replica at once for it). Once a configuration brings replicas, or one
passes its readiness probe, the held requests are tried again, with what is left of their time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from mlspec.runtime.gateway.answers import RETRY_AFTER, error
from mlspec.runtime.gateway.config import Deployment
from mlspec.runtime.httpserver import Answer

MAX_HELD = 4096  # per deployment: beyond this a request is refused at once, so held memory is bounded


class Held(Protocol):
    """A request on its way to a deployment (the gateway's Forward)."""

    deployment: Deployment
    timeout: float

    def attempt(self) -> None: ...
    def finish(self, answer: Answer) -> None: ...


class Holds:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None  # set once the gateway runs
        self._held: dict[str, dict[Held, tuple[float, asyncio.TimerHandle]]] = {}  # name -> request -> deadline

    def hold(self, request: Held) -> None:
        """Keep `request` until a replica is ready or its time is up (a request held again keeps its deadline)."""
        name = request.deployment.name
        held = self._held.setdefault(name, {})
        if request in held:
            return
        if self.loop is None or len(held) >= MAX_HELD:
            request.finish(unavailable(request.deployment, waited=None))
            return
        deadline = time.monotonic() + request.timeout
        held[request] = (deadline, self.loop.call_at(self.loop.time() + request.timeout, self._expired, request))

    def held(self, name: str) -> int:
        return len(self._held.get(name, ()))

    def release(self, deployments: dict[str, Deployment]) -> None:
        """Replicas came (a new configuration, or one passed its readiness probe): try the held requests again,
        oldest first, each with its deployment as configured now and the time it has left."""
        now = time.monotonic()
        for name, held in list(self._held.items()):
            current = deployments.get(name)
            if not held or current is None or not current.replicas:
                continue
            waiting = list(held.items())
            held.clear()
            for request, (deadline, timer) in waiting:
                timer.cancel()
                request.deployment = current
                request.timeout = max(deadline - now, 0.001)
                request.attempt()  # held again (with its deadline) if no replica of the set is ready yet

    def _expired(self, request: Held) -> None:
        held = self._held.get(request.deployment.name)
        if held is not None and held.pop(request, None) is not None:
            request.finish(unavailable(request.deployment, waited=request.timeout))


def unavailable(deployment: Deployment, waited: float | None) -> Answer:
    how = "came up within the request timeout" if waited is not None else "is up and too many requests wait"
    message = f"no replica of deployment '{deployment.name}' {how}; it is scaling up: retry later"
    return error(503, message, [RETRY_AFTER])

"""Per-replica concurrency limits: requests beyond a deployment's `max_concurrent` per replica wait in one FIFO
queue per deployment, taken by whichever replica frees a slot first, for at most `max_queue_wait`; then a 429.

Only requests that find every replica full touch the queue (a deque append and one timer); the others cost a
counter per replica, kept by the router.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from mlspec.runtime.gateway.answers import RETRY_AFTER, error
from mlspec.runtime.gateway.config import Deployment
from mlspec.runtime.gateway.routing import FULL, Router
from mlspec.runtime.httpserver import Answer

MAX_QUEUED = 4096  # per deployment: a request beyond this is refused at once, so the queue's memory is bounded


class Waiter(Protocol):
    """A request on its way to a deployment (the gateway's Forward)."""

    deployment: Deployment
    url: str | None
    expiry: asyncio.TimerHandle | None

    def attempt(self) -> None: ...
    def send(self, url: str) -> None: ...
    def finish(self, answer: Answer) -> None: ...
    def overdue(self) -> None: ...


class Queues:
    def __init__(self, router: Router) -> None:
        self.router = router
        self.loop: asyncio.AbstractEventLoop | None = None  # set once the gateway runs
        self._waiting: dict[str, deque[Waiter]] = {}  # deployment name -> requests waiting for a free slot

    def enqueue(self, waiter: Waiter) -> None:
        """Every replica of the deployment is at its limit: wait for a free slot, up to max_queue_wait."""
        deployment = waiter.deployment
        waiting = self._waiting.get(deployment.name)
        if waiting is None:
            waiting = self._waiting[deployment.name] = deque()
        if deployment.max_queue_wait <= 0 or len(waiting) >= MAX_QUEUED or self.loop is None:
            waiter.finish(too_many(deployment, queued=False))
            return
        waiting.append(waiter)
        waiter.expiry = self.loop.call_later(deployment.max_queue_wait, waiter.overdue)

    def overdue(self, waiter: Waiter) -> None:
        waiting = self._waiting.get(waiter.deployment.name)
        if waiting:
            if waiting[0] is waiter:  # the usual case: every waiter of a deployment waits as long
                waiting.popleft()
            elif waiter in waiting:
                waiting.remove(waiter)
        waiter.finish(too_many(waiter.deployment, queued=True))

    def freed(self, url: str, name: str) -> None:
        """A request on `url` is over: its slot goes to the oldest waiter of the deployment, if any."""
        self.router.release(url)
        if self._waiting.get(name):
            self.dispatch(name)

    def dispatch_all(self) -> None:
        """Capacity came back (a replica passed its readiness probe again): the waiting go first."""
        for name, waiting in self._waiting.items():
            if waiting:
                self.dispatch(name)

    def dispatch(self, name: str) -> None:
        waiting = self._waiting[name]
        while waiting:
            waiter = waiting[0]
            url = self.router.pick(waiter.deployment, waiter.url)
            if url == FULL:
                return
            waiting.popleft()
            if waiter.expiry is not None:
                waiter.expiry.cancel()
                waiter.expiry = None
            if url is None:
                waiter.attempt()  # no replica left to try (a reload removed them): answered 502/503 there
            else:
                waiter.send(url)

    def rebind(self, deployments: dict[str, Deployment]) -> None:
        """A new config is in use: waiting requests take their deployment's new replica set (and limits)."""
        for name, waiting in self._waiting.items():
            current = deployments.get(name)
            if current is not None:
                for waiter in waiting:
                    waiter.deployment = current

    def queued(self, name: str) -> int:
        waiting = self._waiting.get(name)
        return len(waiting) if waiting else 0


def too_many(deployment: Deployment, queued: bool) -> Answer:
    """Azure ML's answer when a deployment is at max_concurrent_requests_per_instance: 429 Too Many Requests."""
    waited = f"waited {deployment.max_queue_wait:g}s (max_queue_wait) without" if queued else \
        "found no room in the queue and no"
    message = (f"deployment '{deployment.name}' is at its limit of {deployment.max_concurrent} concurrent requests "
               f"per replica on each of its {len(deployment.replicas)} replica(s); the request {waited} free slot; "
               "retry later or raise max_concurrent_requests_per_instance")
    return error(429, message, [RETRY_AFTER])

"""Which replica gets a request: round-robin within a deployment, skipping replicas that failed their readiness
probe or recently refused to connect, and (with a concurrency limit) replicas with no free slot."""

from __future__ import annotations

import time
from typing import Any

from mlspec.runtime.gateway.config import Deployment

DOWN_FOR_S = 5.0  # a replica that refused a connection is skipped this long (passive health)
ATTEMPTS = 2  # the first replica, then one retry on another
FULL = ""  # pick's answer when every replica that could take the request is at its concurrency limit


class Router:
    """Keyed by replica URL, so round-robin positions and health survive config reloads."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._down_until: dict[str, float] = {}
        self.unready: set[str] = set()  # replicas whose readiness probe failed: no traffic until it passes again
        self.in_flight: dict[str, int] = {}  # requests sent and not yet answered, per replica (with a limit only)

    def pick(self, deployment: Deployment, avoid: str | None = None) -> str | None:
        """The next replica in round-robin order that is ready and has a free slot (a down one only as a last
        resort); FULL when replicas are there but all at their limit, None when there is none to try. Not a
        list, no allocation: this runs for every request."""
        replicas = deployment.replicas
        count = len(replicas)
        if not count:
            return None
        start = self._next.get(deployment.name, 0) % count
        self._next[deployment.name] = start + 1
        limit, in_flight, unready, down = deployment.max_concurrent, self.in_flight, self.unready, self._down_until
        now = time.monotonic() if down else 0.0
        fallback: str | None = None
        full = False
        for offset in range(count):
            url = replicas[(start + offset) % count]
            if url == avoid or (unready and url in unready):
                continue
            if limit and in_flight.get(url, 0) >= limit:
                full = True
            elif down and down.get(url, 0.0) > now:
                fallback = fallback or url
            else:
                return url
        return fallback if fallback is not None else FULL if full else None

    def take(self, url: str) -> None:
        self.in_flight[url] = self.in_flight.get(url, 0) + 1

    def release(self, url: str) -> None:
        self.in_flight[url] -= 1

    def failed(self, url: str) -> None:
        self._down_until[url] = time.monotonic() + DOWN_FOR_S

    def succeeded(self, url: str) -> None:
        if self._down_until:
            self._down_until.pop(url, None)

    def health(self, deployment: Deployment) -> dict[str, Any]:
        """Its replicas by state, and the deployment's: "ready" (all ready), "degraded" (some), "unavailable"
        (none is: each failed its readiness probe or refused connections) or "idle" (it has no replica)."""
        now = time.monotonic()
        down = {url for url in deployment.replicas if self._down_until.get(url, 0.0) > now}
        unready = sum(url in self.unready for url in deployment.replicas)
        count = len(deployment.replicas)
        ready = sum(url not in self.unready and url not in down for url in deployment.replicas)
        state = "idle" if not count else "ready" if ready == count else "degraded" if ready else "unavailable"
        return {"weight": deployment.weight, "replicas": count, "down": len(down), "unready": unready,
                "ready": ready, "state": state}

    def down(self, deployment: Deployment) -> int:
        now = time.monotonic()
        return sum(self._down_until.get(url, 0.0) > now for url in deployment.replicas)

    def ready(self, deployment: Deployment) -> int:
        """Replicas that would take a request now: passing readiness, not recently refusing connections."""
        now = time.monotonic()
        return sum(url not in self.unready and self._down_until.get(url, 0.0) <= now for url in deployment.replicas)

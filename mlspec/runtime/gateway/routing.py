"""Which replica gets a request: round-robin within a deployment, skipping replicas that recently refused to connect."""

from __future__ import annotations

import time

from mlspec.runtime.gateway.config import Deployment

DOWN_FOR_S = 5.0  # a replica that failed is skipped this long (passive health: no probing traffic of our own)
ATTEMPTS = 2  # the first replica, then one retry on another


class Router:
    """Keyed by replica URL, so round-robin positions and health survive config reloads."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._down_until: dict[str, float] = {}

    def candidates(self, deployment: Deployment) -> list[str]:
        """Up to ATTEMPTS distinct replicas in round-robin order; healthy ones first, down ones only as a last try."""
        replicas = deployment.replicas
        if not replicas:
            return []
        start = self._next.get(deployment.name, 0) % len(replicas)
        self._next[deployment.name] = start + 1
        ordered = replicas[start:] + replicas[:start]
        if not self._down_until:
            return list(ordered[:ATTEMPTS])
        now = time.monotonic()
        up = [url for url in ordered if self._down_until.get(url, 0.0) <= now]
        down = [url for url in ordered if self._down_until.get(url, 0.0) > now]
        return (up + down)[:ATTEMPTS]

    def failed(self, url: str) -> None:
        self._down_until[url] = time.monotonic() + DOWN_FOR_S

    def succeeded(self, url: str) -> None:
        if self._down_until:
            self._down_until.pop(url, None)

    def down(self, deployment: Deployment) -> int:
        now = time.monotonic()
        return sum(self._down_until.get(url, 0.0) > now for url in deployment.replicas)

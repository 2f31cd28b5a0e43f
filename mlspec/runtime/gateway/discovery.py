"""Replica sets found by name: a deployment's `discover` URL names a network alias that every one of its replicas
holds (on Docker, the containers of every generation), and the addresses it resolves to are its replicas.

A replica found this way joins only once its own readiness probe passes, and one that leaves the answers stops
being sent to (requests it holds finish on their connections). Names are resolved again every REFRESH_S and at
once when a replica fails, so a new generation is known before the old one stops taking connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterable
from dataclasses import replace
from urllib.parse import urlsplit

from mlspec.runtime.gateway.config import Deployment, GatewayConfig

REFRESH_S = 1.0
MIN_GAP_S = 0.1  # between resolutions, however often replicas fail
_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


async def resolve(url: str) -> tuple[str, ...] | None:
    """http://NAME:PORT -> the replica URLs it resolves to, sorted; () when the name is unknown (no container
    holds it now); None when the resolver failed otherwise (the last answer stands)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 80
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        return () if error.errno in _NO_SUCH_NAME else None
    except OSError:
        return None
    addresses = {str(address[4][0]) for address in found}
    return tuple(sorted(f"http://[{ip}]:{port}" if ":" in ip else f"http://{ip}:{port}" for ip in addresses))


def with_found(config: GatewayConfig, found: dict[str, tuple[str, ...]]) -> GatewayConfig | None:
    """`config` with each discovered deployment's replicas as last resolved; None when nothing changes."""
    changed: dict[str, Deployment] = {}
    for name, deployment in config.deployments.items():
        if deployment.discover is not None and deployment.discover in found \
                and found[deployment.discover] != deployment.replicas:
            changed[name] = replace(deployment, replicas=found[deployment.discover])
    if not changed:
        return None
    return replace(config, deployments={name: changed.get(name, d) for name, d in config.deployments.items()})


class Discovery:
    """Resolves the current configuration's `discover` names and hands a configuration with the addresses found
    to `use` whenever they change."""

    def __init__(self, current: Callable[[], GatewayConfig], use: Callable[[GatewayConfig, Iterable[str]], None]) \
            -> None:
        self._current, self._use = current, use
        self.found: dict[str, tuple[str, ...]] = {}  # discover URL -> replica URLs, as last resolved
        self._wake: asyncio.Event | None = None

    def wake(self) -> None:
        """Resolve again now (a replica failed: its successor may already be there)."""
        if self._wake is not None:
            self._wake.set()

    def apply(self) -> None:
        """Fill the current configuration's discovered deployments with what is known (a configuration just taken
        from the control channel or the file names them, without addresses)."""
        config = self._current()
        updated = with_found(config, self.found)
        if updated is not None:
            known = {url for d in config.deployments.values() for url in d.replicas}
            fresh = {url for d in updated.deployments.values() if d.discover for url in d.replicas} - known
            self._use(updated, fresh)

    async def run(self) -> None:
        self._wake = wake = asyncio.Event()
        while True:
            wake.clear()
            names = sorted({d.discover for d in self._current().deployments.values() if d.discover})
            if names:
                for name, replicas in zip(names, await asyncio.gather(*(resolve(n) for n in names)), strict=True):
                    if replicas is not None:
                        self.found[name] = replicas
                self.apply()
            await asyncio.sleep(MIN_GAP_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), REFRESH_S)

"""One request on its way to a deployment: a replica picked, the request written to it, and (only when no byte of
it reached that replica) another one tried."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from mlspec.runtime.gateway.answers import RETRY_AFTER, error
from mlspec.runtime.gateway.config import Deployment
from mlspec.runtime.gateway.routing import ATTEMPTS, FULL
from mlspec.runtime.gateway.upstream import Response, UpstreamError, UpstreamTimeout
from mlspec.runtime.httpserver import Answer, Headers, Reply, Request
from mlspec.runtime.internal_token import HEADER as INTERNAL_TOKEN
from mlspec.runtime.probing import DRAINING_HEADER
from mlspec.runtime.sockets import is_unix, unix_path

if TYPE_CHECKING:
    from mlspec.runtime.gateway.app import GatewayApp

# Not passed on to replicas: hop-by-hop headers, the ones rebuilt here, the caller's key and whatever the caller
# offers as the internal token (only the gateway's own reaches a replica).
DROP_REQUEST = frozenset({b"host", b"content-length", b"connection", b"keep-alive", b"transfer-encoding", b"te",
                          b"trailer", b"upgrade", b"expect", b"proxy-authorization", b"proxy-connection",
                          b"authorization", b"api-key", INTERNAL_TOKEN})
_DROP_RESPONSE = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"date",
                            b"server", DRAINING_HEADER})
_STATUS_TEXT = {status: str(status) for status in range(100, 600)}  # a metric label per request, made once


class Forward:
    """One request on its way to a deployment: a replica, then (if that one cannot be reached) another."""

    __slots__ = ("app", "deployment", "expiry", "failures", "held", "reply", "request", "started", "timeout",
                 "tried", "url")

    def __init__(self, app: GatewayApp, deployment: Deployment, request: Request, timeout: float,
                 reply: Reply) -> None:
        self.app, self.deployment, self.request, self.timeout, self.reply = app, deployment, request, timeout, reply
        self.tried = 0
        self.url: str | None = None  # the replica tried last
        self.held = False  # whether that replica's concurrency slot is ours
        self.failures: list[str] = []
        self.expiry: asyncio.TimerHandle | None = None  # while queued
        self.started = time.perf_counter()
        in_flight = app.in_flight
        in_flight[deployment.name] = in_flight.get(deployment.name, 0) + 1

    def attempt(self) -> None:
        if self.tried:  # a retry goes by the replica set in use now, which may have changed since the first try
            self.deployment = self.app.watcher.config.deployments.get(self.deployment.name, self.deployment)
        url = self.app.router.pick(self.deployment, self.url) if self.tried < ATTEMPTS else None
        if url == FULL:
            self.app.queues.enqueue(self)
        elif url is not None:
            self.send(url)
        elif (self.deployment.hold and not self.failures) or (self.deployment.discover and self.tried < ATTEMPTS):
            # Scaled to zero, or its replicas not ready yet (found by name: a new generation still loading while
            # the old one leaves, and a replica that refused the connection never saw the request): wait for one.
            self.app.holds.hold(self)
        elif self.failures:
            name = self.deployment.name
            self.finish(error(502, f"no replica of deployment '{name}' answered: {'; '.join(self.failures)}"))
        else:
            self.finish(no_replica(self.deployment, self.app.router.unready))

    def send(self, url: str) -> None:
        self.tried += 1
        self.url = url
        self.held = self.deployment.max_concurrent > 0
        if self.held:
            self.app.router.take(url)
        upstream = upstream_request(self.request, url, self.app.internal_token)
        self.app.pool.send(*self.app.origin(url), upstream, self.timeout, self.answered)

    def answered(self, response: Response | None, failure: Exception | None) -> None:
        url, name = self.url, self.deployment.name
        assert url is not None
        if self.held:
            self.held = False
            self.app.queues.freed(url, name)
        if response is not None:
            if response.status == 503 or _draining(response):  # not ready (a restarted replica loading its
                self.app.suspect(url)  # model), or stopping: no more until it is ready again
            else:
                self.app.router.succeeded(url)
            self.finish((response.status, [h for h in response.headers if h[0] not in _DROP_RESPONSE], response.body))
        elif isinstance(failure, UpstreamTimeout):  # alive but slow: retrying elsewhere would only double the load
            self.finish(error(504, f"deployment '{name}' did not answer within {self.timeout:g}s"))
        else:
            self.app.router.failed(url)
            self.app.suspect(url)
            self.app.upstream_errors.inc((name, url))
            self.failures.append(f"{url}: {failure}")
            if isinstance(failure, UpstreamError) and failure.connect:
                self.attempt()  # no byte of it reached the replica: another ready replica may take it
            else:  # written, so the replica may have acted on it: never sent twice
                self.finish(error(502, f"deployment '{name}' failed the request: {'; '.join(self.failures)}"))

    def overdue(self) -> None:
        self.expiry = None
        self.app.queues.overdue(self)

    def finish(self, answer: Answer) -> None:
        status, headers, body = answer
        name = self.deployment.name
        app = self.app
        app.in_flight[name] -= 1
        app.requests_total[name] = app.requests_total.get(name, 0) + 1
        app.requests.inc((name, _STATUS_TEXT.get(status) or str(status)))
        seconds = time.perf_counter() - self.started
        app.latency.observe(seconds, (name,))
        app.traffic.record(name, self.url or "", status, seconds)
        if app.sampler is not None:  # off: this one test is all the fast path pays
            app.sampler.offer(name, self.request, status, _content_type(headers), body, seconds)
        self.reply((status, [*headers, (b"x-mlspec-deployment", self.deployment.name_bytes)], body))


def _content_type(headers: Headers) -> bytes | None:
    return next((value for name, value in headers if name == b"content-type"), None)


def _draining(response: Response) -> bool:
    return any(name == DRAINING_HEADER for name, _ in response.headers)


def replica_origin(url: str) -> tuple[str, int]:
    """(host, port) of an http:// replica; (socket path, 0) of a unix: one."""
    if is_unix(url):
        return unix_path(url), 0
    host, _, port = url.removeprefix("http://").rpartition(":")
    return host.strip("[]"), int(port)


def upstream_request(request: Request, url: str, internal_token: bytes | None = None) -> bytes:
    """The request as the replica gets it: /score is Azure ML's name for /invocations."""
    target = b"/invocations" + request.target[len(b"/score"):] if request.path == b"/score" else request.target
    host = b"localhost" if is_unix(url) else url.removeprefix("http://").encode()
    lines = [b"%s %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n" % (
        request.method, target, host, len(request.body))]
    lines += [b"%s: %s\r\n" % (name, value) for name, value in request.headers if name not in DROP_REQUEST]
    if internal_token is not None:
        lines.append(b"%s: %s\r\n" % (INTERNAL_TOKEN, internal_token))
    lines.append(b"\r\n")
    lines.append(request.body)
    return b"".join(lines)


def no_replica(deployment: Deployment, unready: set[str]) -> Answer:
    failing = sum(url in unready for url in deployment.replicas)
    if failing:
        status, headers, body = error(503, f"deployment '{deployment.name}' has no ready replica ({failing} "
                                            "failing the readiness probe)")
        return status, [*headers, RETRY_AFTER], body
    return error(503, f"deployment '{deployment.name}' has no replicas")

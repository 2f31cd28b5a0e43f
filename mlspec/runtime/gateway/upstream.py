"""A small HTTP/1.1 client for the replicas: pooled keep-alive connections, responses parsed by httptools.

Why not httpx: it costs several hundred microseconds of Python per request, more than the scoring server spends
answering one; this client writes one buffer and parses with the same C parser uvicorn uses.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field

import httptools

CONNECT_TIMEOUT_S = 2.0
IDLE_S = 30.0  # pooled connections older than this are closed rather than reused (servers keep them 75 s)
MAX_IDLE = 256  # per replica


class UpstreamError(Exception):
    """The replica could not be reached or dropped the connection; `connect` tells whether nothing was sent."""

    def __init__(self, message: str, connect: bool) -> None:
        super().__init__(message)
        self.connect = connect


class UpstreamTimeout(Exception):
    """The replica took longer than the request timeout."""


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class _Stale(Exception):
    """A pooled connection the server had closed while idle: try a fresh one (the replica itself is fine)."""


@dataclass(eq=False)
class _Connection(asyncio.Protocol):
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport | None = None
    closed: bool = False
    used: bool = False
    idle_since: float = 0.0
    _waiter: asyncio.Future[Response] | None = None
    _headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    _body: list[bytes] = field(default_factory=list)
    _received: bool = False
    _keep_alive: bool = True
    _head: bool = False  # the request in flight is a HEAD: its response has headers only

    def __post_init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(UpstreamError(f"malformed response: {error}", connect=False))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        stale = self.used and not self._received
        self._fail(_Stale() if stale else UpstreamError("the replica closed the connection", connect=False))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_headers_complete(self) -> None:
        if self._head:  # a HEAD response's content-length describes a body that is never sent: it is complete
            self.on_message_complete()

    def on_message_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(Response(self._parser.get_status_code(), self._headers, b"".join(self._body)))

    def _fail(self, error: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)

    async def exchange(self, request: bytes, timeout: float) -> Response:
        self._headers, self._body, self._received = [], [], False
        head = request.startswith(b"HEAD ")
        if head or self._head:
            # The parser cannot be told a response has no body, so after a HEAD it waits for one: a fresh parser
            # for each exchange around a HEAD keeps the connection reusable.
            self._parser = httptools.HttpResponseParser(self)
        self._head = head
        self._waiter = waiter = self.loop.create_future()
        assert self.transport is not None
        self.transport.write(request)
        expiry = self.loop.call_later(timeout, self._fail, UpstreamTimeout())
        try:
            response = await waiter
        except UpstreamTimeout:
            self.close()  # the answer may still come: this connection cannot carry another request
            raise
        finally:
            expiry.cancel()
            self._waiter = None
            self.used = True
        if not self._keep_alive:
            self.close()
        return response

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    def __init__(self) -> None:
        self._idle: defaultdict[tuple[str, int], list[_Connection]] = defaultdict(list)

    async def send(self, host: str, port: int, request: bytes, timeout: float) -> Response:
        """One request/response on a pooled connection, or on a new one if the pooled one turns out closed."""
        origin = (host, port)
        connection = self._pooled(origin)
        if connection is not None:
            try:
                return await self._exchange(origin, connection, request, timeout)
            except _Stale:
                pass
        connection = await self._connect(origin)
        try:
            return await self._exchange(origin, connection, request, timeout)
        except _Stale:
            raise UpstreamError("the replica closed the connection without answering", connect=False) from None

    def _pooled(self, origin: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < IDLE_S:
                return connection
            connection.close()
        return None

    async def _connect(self, origin: tuple[str, int]) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), *origin), CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as error:
            reason = "timed out" if isinstance(error, TimeoutError) else error.strerror or str(error)
            raise UpstreamError(f"cannot connect to {origin[0]}:{origin[1]}: {reason}", connect=True) from None
        return protocol

    async def _exchange(self, origin: tuple[str, int], connection: _Connection, request: bytes,
                        timeout: float) -> Response:
        response = await connection.exchange(request, timeout)
        idle = self._idle[origin]
        if not connection.closed and len(idle) < MAX_IDLE:
            connection.idle_since = time.monotonic()
            idle.append(connection)
        elif not connection.closed:
            connection.close()
        return response

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

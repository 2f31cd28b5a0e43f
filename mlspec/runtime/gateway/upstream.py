"""A small HTTP/1.1 client for the replicas: pooled keep-alive connections, responses parsed by httptools.

Why not httpx: it costs several hundred microseconds of Python per request, more than the scoring server spends
answering one; this client writes one buffer and parses with the same C parser uvicorn uses. Why callbacks
rather than coroutines: an exchange on a pooled connection is a write and, later, a parsed response; a future
and the task awaiting it cost as much again as that, per request. Only connecting (rare) is a coroutine.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import httptools

CONNECT_TIMEOUT_S = 2.0
IDLE_S = 30.0  # pooled connections older than this are closed rather than reused (servers keep them 75 s)
MAX_IDLE = 256  # per replica


class UpstreamError(Exception):
    """The replica could not be reached or dropped the connection; `connect` is True only when no byte of the
    request was sent (it could not connect), so the request may go to another replica."""

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


Done = Callable[[Response | None, Exception | None], None]  # called once: the response, or why there is none


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, unix: bool = False) -> None:
        self.loop = loop
        self.unix = unix
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._done: Done | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._received = False
        self._unsent = False  # the write of the request in flight failed at once: not one byte of it was sent
        self._head = False  # the request in flight is a HEAD: its response has headers only
        self._parser = httptools.HttpResponseParser(self)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self.close()
            self._finish(None, UpstreamError(f"malformed response: {error}", connect=False))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        # The request was written: the replica may have read and acted on it, so this is never retried.
        if self._unsent:
            self._finish(None, UpstreamError("the replica had closed the connection before the request was sent",
                                             connect=True))
            return
        if self.unix and isinstance(exc, ConnectionResetError) and not self._received:
            # On a Unix socket a reset means the replica closed with what was sent still unread in its queue: it
            # never had the whole request, so it cannot have acted on it (a replica killed while it waited).
            self._finish(None, UpstreamError("the replica went away before it had read the request",
                                             connect=True))
            return
        why = "without answering" if not self._received else "in the middle of its answer"
        self._finish(None, UpstreamError(f"the replica closed the connection {why}", connect=False))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_headers_complete(self) -> None:
        if self._head:  # a HEAD response's content-length describes a body that is never sent: it is complete
            self.on_message_complete()

    def on_message_complete(self) -> None:
        if self._done is None:
            return
        response = Response(self._parser.get_status_code(), self._headers, b"".join(self._body))
        if not self._parser.should_keep_alive():
            self.close()
        self._finish(response, None)

    def exchange(self, request: bytes, timeout: float, done: Done) -> None:
        """Send `request`; `done` gets the response, or the error, within `timeout` seconds."""
        self._headers, self._body, self._received, self._unsent = [], [], False, False
        head = request.startswith(b"HEAD ")
        if head or self._head:
            # The parser cannot be told a response has no body, so after a HEAD it waits for one: a fresh parser
            # for each exchange around a HEAD keeps the connection reusable.
            self._parser = httptools.HttpResponseParser(self)
        self._head = head
        self._done = done
        assert self.transport is not None
        # The transport sends at once what the socket takes; if that first send fails (the replica had gone: a
        # broken pipe), it is closing as this returns and not one byte left. Only then may the request go elsewhere.
        self._unsent = True
        self.transport.write(request)
        self._unsent = self.transport.is_closing()
        self._expiry = self.loop.call_later(timeout, self._timed_out)

    def _timed_out(self) -> None:
        self.close()  # the answer may still come: this connection cannot carry another request
        self._finish(None, UpstreamTimeout())

    def _finish(self, response: Response | None, error: Exception | None) -> None:
        done, self._done = self._done, None
        if done is None:
            return
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        done(response, error)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    def __init__(self) -> None:
        self._idle: defaultdict[tuple[str, int], list[_Connection]] = defaultdict(list)
        self._connecting: set[asyncio.Task[None]] = set()

    def send(self, host: str, port: int, request: bytes, timeout: float, done: Done) -> None:
        """One request/response on a pooled connection, or on a new one if none is idle; `done` gets the response
        or an UpstreamError/UpstreamTimeout. `port` 0: `host` is the path of a Unix socket."""
        origin = (host, port)
        connection = self._pooled(origin)
        if connection is None:
            self._connect_then_send(origin, request, timeout, done)
        else:
            self._exchange(origin, connection, request, timeout, done)

    def _exchange(self, origin: tuple[str, int], connection: _Connection, request: bytes, timeout: float,
                  done: Done) -> None:
        def answered(response: Response | None, error: Exception | None) -> None:
            self._after(origin, connection, response, error, done)

        connection.exchange(request, timeout, answered)

    def _connect_then_send(self, origin: tuple[str, int], request: bytes, timeout: float, done: Done) -> None:
        task = asyncio.get_running_loop().create_task(self._connect_and_send(origin, request, timeout, done))
        self._connecting.add(task)  # held until done: the loop keeps only a weak reference to tasks
        task.add_done_callback(self._connecting.discard)

    async def _connect_and_send(self, origin: tuple[str, int], request: bytes, timeout: float, done: Done) -> None:
        try:
            connection = await self._connect(origin)
        except UpstreamError as error:
            done(None, error)
            return
        self._exchange(origin, connection, request, timeout, done)

    def _after(self, origin: tuple[str, int], connection: _Connection, response: Response | None,
               error: Exception | None, done: Done) -> None:
        if not connection.closed:
            idle = self._idle[origin]
            if len(idle) < MAX_IDLE:
                connection.idle_since = time.monotonic()
                idle.append(connection)
            else:
                connection.close()
        done(response, error)

    def _pooled(self, origin: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            # One the replica has closed (or begun to close) is never written to: it would take the request and
            # lose it. Only a connection still open when the request goes may carry it.
            transport = connection.transport
            if not connection.closed and transport is not None and not transport.is_closing() \
                    and now - connection.idle_since < IDLE_S:
                return connection
            connection.close()
        return None

    async def _connect(self, origin: tuple[str, int]) -> _Connection:
        loop = asyncio.get_running_loop()
        host, port = origin
        try:
            if port == 0:
                connecting = loop.create_unix_connection(lambda: _Connection(loop, unix=True), host)
            else:
                connecting = loop.create_connection(lambda: _Connection(loop), host, port)
            _, protocol = await asyncio.wait_for(connecting, CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as error:
            reason = "timed out" if isinstance(error, TimeoutError) else error.strerror or str(error)
            where = host if port == 0 else f"{host}:{port}"
            raise UpstreamError(f"cannot connect to {where}: {reason}", connect=True) from None
        return protocol

    def close(self) -> None:
        for task in self._connecting:
            task.cancel()
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

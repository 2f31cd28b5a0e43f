"""mlspec's HTTP/1.1 server, under the gateway and the scoring server: an asyncio protocol over httptools,
keep-alive, pipelining, one request at a time per connection, each response in one write.

Why not uvicorn: in front of a replica, uvicorn's ASGI layer (a task, scope and message dicts per request)
doubled the gateway's added latency, and under the scoring server it writes each response in two (headers, then
body); this keeps the same C parser and drops the rest. The handler is a plain call with a reply callback, not a
coroutine, so that the gateway makes no task per request; the scoring server's ASGI app runs on it through
`serving.asgi.asgi_handler`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import stat
import sys
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

import httptools

KEEP_ALIVE_S = 75.0  # idle client connections are closed after this
DRAIN_S = 10.0  # on SIGTERM, requests in flight get this long to finish
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}

Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class Request:
    method: bytes
    target: bytes  # path and query, as sent
    path: bytes  # without the query
    headers: Headers  # names lower-cased
    body: bytes
    prechecked: bool = False  # the precheck passed it when its headers came in: the handler need not repeat it

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


Answer = tuple[int, Headers, bytes]
Reply = Callable[[Answer], None]
Handler = Callable[[Request, Reply], None]  # answers through the reply, once: at once or later on the loop
Precheck = Callable[[bytes, Headers], Answer | None]  # an answer from the path and headers alone, or None


def render(status: int, headers: Headers, body: bytes, close: bool = False, head: bool = False) -> bytes:
    """The response's bytes; to a HEAD request, the headers alone (a body there would be read as the next
    response on the connection)."""
    lines = [b"HTTP/1.1 %d %s\r\ncontent-length: %d\r\n" % (status, _REASONS.get(status, b""), len(body))]
    lines += [b"%s: %s\r\n" % pair for pair in headers]
    if close:
        lines.append(b"connection: close\r\n")
    lines += [b"\r\n", b"" if head else body]
    return b"".join(lines)


class _Connection(asyncio.Protocol):
    def __init__(self, handler: Handler, precheck: Precheck, max_body: Callable[[], int],
                 live: set[_Connection]) -> None:
        self._handler, self._precheck, self._max_body, self._live = handler, precheck, max_body, live
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._queue: deque[tuple[Request, bool]] = deque()  # pipelined requests wait their turn
        self._busy = False
        self._current: tuple[Request, bool] | None = None  # the request being answered, and its keep-alive
        self._in_handler = False
        self._idle: asyncio.TimerHandle | None = None
        self._last_active = 0.0
        self._prechecked = False
        self._url, self._headers, self._body, self._size = b"", [], [], 0  # type: ignore[var-annotated]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._live.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._live.discard(self)
        if self._idle is not None:
            self._idle.cancel()

    def data_received(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            return  # refused already: the rest of what the client sent is dropped
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, b"protocol upgrades are not supported")
        except httptools.HttpParserError as error:
            # An exception raised in a callback comes back wrapped, with the original as its context.
            if isinstance(error.__context__, _Answered):
                assert self._transport is not None
                self._transport.write(render(*error.__context__.answer, close=True,
                                             head=self._parser.get_method() == b"HEAD"))
                self._transport.close()  # the body was not read: the connection cannot carry another request
            elif isinstance(error.__context__, _TooLarge):
                self._refuse(413, b"the request body is over the limit of %d bytes" % self._max_body())
            else:
                self._refuse(400, b"malformed HTTP request")

    # httptools callbacks ---------------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url, self._headers, self._body, self._size = b"", [], [], 0
        self._prechecked = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if not self._busy and not self._queue:  # with requests ahead of it, answering now would reorder answers
            early = self._precheck(self._url.partition(b"?")[0], self._headers)
            if early is not None:
                raise _Answered(early)
            self._prechecked = True
        for name, value in self._headers:  # one pass: this runs for every request
            if name == b"content-length":
                if value.isdigit() and int(value) > self._max_body():
                    raise _TooLarge()  # answered 413 at once: the body is not read
            elif name == b"expect" and value.lower() == b"100-continue":
                assert self._transport is not None
                self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max_body():
            raise _TooLarge()
        self._body.append(body)

    def on_message_complete(self) -> None:
        path = self._url.partition(b"?")[0]
        request = Request(self._parser.get_method(), self._url, path, self._headers, b"".join(self._body),
                          self._prechecked)
        self._queue.append((request, self._parser.should_keep_alive()))
        if not self._busy:
            self._next()

    # responding ------------------------------------------------------------------------------------------------
    def _next(self) -> None:
        """Hand queued requests to the handler in order; a loop, not recursion, where answers come at once."""
        while self._queue and self._transport is not None and not self._transport.is_closing():
            self._busy = True
            self._current = request, _ = self._queue.popleft()
            self._in_handler = True
            try:
                self._handler(request, self._reply)
            except Exception as error:  # a bug of ours: the client gets a 500, never a traceback
                traceback.print_exc()
                if self._busy:
                    self._reply((500, [(b"content-type", b"application/json")],
                                 b'{"error": "internal gateway error: %s"}' % type(error).__name__.encode()))
            finally:
                self._in_handler = False
            if self._busy:
                return  # answered later: the reply goes on from there
        self._busy = False
        self._arm_idle()

    def _reply(self, answer: Answer) -> None:
        if not self._busy or self._current is None:
            return  # answered already (a reply must come once)
        (request, keep_alive), self._current = self._current, None
        self._busy = False
        if self._transport is None or self._transport.is_closing():
            return  # the client went away while its answer was being made
        status, headers, body = answer
        self._transport.write(render(status, headers, body, close=not keep_alive, head=request.method == b"HEAD"))
        if not keep_alive:
            self._transport.close()
        elif not self._in_handler:
            self._next()

    def _refuse(self, status: int, message: bytes) -> None:
        assert self._transport is not None
        self._transport.write(render(status, [(b"content-type", b"application/json")],
                                     b'{"error": "%s"}' % message, close=True))
        self._transport.close()

    def _arm_idle(self) -> None:
        """Note the connection idle from now. One timer per connection, re-armed only when it fires: a timer
        cancelled and made anew for every request costs as much as the rest of the request's bookkeeping."""
        loop = asyncio.get_running_loop()
        self._last_active = loop.time()
        if self._idle is None:
            self._idle = loop.call_later(KEEP_ALIVE_S, self._close_if_idle_too_long)

    def _close_if_idle_too_long(self) -> None:
        self._idle = None
        if self._transport is None or self._transport.is_closing():
            return
        loop = asyncio.get_running_loop()
        idle_for = loop.time() - self._last_active
        if self._busy or idle_for < KEEP_ALIVE_S:  # a request in flight, however long, keeps its connection
            self._idle = loop.call_later(KEEP_ALIVE_S if self._busy else KEEP_ALIVE_S - idle_for,
                                         self._close_if_idle_too_long)
        else:
            self._transport.close()

    @property
    def busy(self) -> bool:
        return self._busy

    def close_if_idle(self) -> None:
        if not self._busy and self._transport is not None:
            self._transport.close()


class _TooLarge(Exception):
    pass


class _Answered(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__()
        self.answer = answer


async def serve(sock: socket.socket, handler: Handler, precheck: Precheck, max_body: Callable[[], int],
                stop: asyncio.Event | None = None) -> None:
    """Serve on the listening socket until SIGTERM or SIGINT (or `stop` is set), then drain requests in flight
    (up to DRAIN_S)."""
    loop = asyncio.get_running_loop()
    live: set[_Connection] = set()
    server = await listen(sock, handler, precheck, max_body, live)
    stop = stop or asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    deadline = loop.time() + DRAIN_S
    while any(c.busy for c in live) and loop.time() < deadline:
        for connection in list(live):
            connection.close_if_idle()
        await asyncio.sleep(0.05)
    for connection in list(live):
        connection.close_if_idle()


async def listen(sock: socket.socket, handler: Handler, precheck: Precheck, max_body: Callable[[], int],
                 live: set[_Connection] | None = None) -> asyncio.Server:
    """Serve on the listening socket (TCP or Unix) on the running loop, with no signal handling of its own."""
    loop = asyncio.get_running_loop()
    connections: set[_Connection] = set() if live is None else live
    if sock.family == socket.AF_UNIX:
        return await loop.create_unix_server(lambda: _Connection(handler, precheck, max_body, connections),
                                             sock=sock, backlog=2048)
    return await loop.create_server(lambda: _Connection(handler, precheck, max_body, connections), sock=sock,
                                    backlog=2048)


def bind(host: str, port: int, program: str) -> socket.socket:
    """Listen at once, before anything slow is imported: the port is taken (or the clash reported) immediately."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sys.exit(f"{program}: error: cannot listen on {host}:{port}: {error.strerror}")
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def bind_unix(path: str, program: str) -> socket.socket:
    """Listen on a Unix socket readable and writable by its owner only (0600): the file mode is the access
    control. Its folder must be owner-only too (see mlspec.runtime.sockets); a stale socket file is replaced."""
    from mlspec.runtime.sockets import check_private_dir

    try:
        check_private_dir(os.path.dirname(path))
    except PermissionError as error:
        sys.exit(f"{program}: error: {error}")
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)  # the file is created 0600: no moment where another user could connect
    try:
        sock.bind(path)
    except OSError as error:
        sys.exit(f"{program}: error: cannot listen on {path}: {error.strerror or error}")
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock

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

from mlspec.runtime import httplimits

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
        self._coding: bytes | None = None  # the body's content-encoding, decoded once it is whole
        self._reading_head = True  # between a request's end (or the connection's start) and its headers' end
        self._head_bytes = 0  # bytes of the head being read, counted as they are fed to the parser
        self._began = False  # a request has begun and its headers are not all in
        self._begun = 0  # requests begun on this connection
        self._head_since: float | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._unchecked = False  # a request whose headers came in behind another, its body still to be read
        self._continue = False  # that request expects 100 Continue
        self._final: bytes | None = None  # a refusal, written once the requests ahead of it are answered
        self._eof = False  # the client has shut its side: answer what came, then close

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._live.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._live.discard(self)
        for timer in (self._idle, self._head_timer):
            if timer is not None:
                timer.cancel()

    def eof_received(self) -> bool:
        """A client that shut its sending side (after its request) still gets its answers: keep the connection
        half-open until they are written."""
        self._eof = True
        return bool(self._busy or self._queue)  # nothing in flight: closed at once

    def data_received(self, data: bytes) -> None:
        if self._final is not None or self._transport is None or self._transport.is_closing():
            return  # refused already: the rest of what the client sent is dropped
        try:
            while data:
                if not self._reading_head:
                    self._parser.feed_data(data)
                    break
                # Fed no more than the head's room: a huge head is refused before httptools buffers it.
                room = httplimits.MAX_HEAD - self._head_bytes + 1
                piece, data = (data, b"") if len(data) <= room else (data[:room], data[room:])
                begun = self._begun
                self._parser.feed_data(piece)
                # The same head as before the piece, still not whole: all of the piece was head. (One that began
                # within the piece is counted from the next: at most one read's bytes more than the limit.)
                if self._reading_head and self._began and self._begun == begun:
                    self._head_bytes += len(piece)
                    if self._head_bytes > httplimits.MAX_HEAD:
                        raise _Refused(431, b"the request head is over the limit of %d bytes" % httplimits.MAX_HEAD)
        except _Refused as refused:
            self._refuse(refused.status, refused.message)
        except httptools.HttpParserUpgrade:
            self._refuse(400, b"protocol upgrades are not supported")
        except httptools.HttpParserError as error:
            # An exception raised in a callback comes back wrapped, with the original as its context.
            context = error.__context__
            if isinstance(context, _Answered):
                self._fail(context.answer)
            elif isinstance(context, _Refused):
                self._refuse(context.status, context.message)
            else:
                self._refuse(400, b"malformed HTTP request")
        else:
            if self._began:
                self._watch_head()

    # httptools callbacks ---------------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url, self._headers, self._body, self._size = b"", [], [], 0
        self._prechecked = self._continue = self._unchecked = False
        self._coding = None
        self._began, self._head_bytes, self._head_since = True, 0, None
        self._begun += 1

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > httplimits.MAX_URL:
            raise _Refused(414, b"the request target is over the limit of %d bytes" % httplimits.MAX_URL)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))
        if len(name) + len(value) > httplimits.MAX_HEADER_LINE or len(self._headers) > httplimits.MAX_HEADERS:
            raise _Refused(431, b"a request header is over the limit of %d bytes, or there are more than %d "
                                b"headers" % (httplimits.MAX_HEADER_LINE, httplimits.MAX_HEADERS))

    def on_headers_complete(self) -> None:
        self._reading_head = self._began = False
        expect = False
        for name, value in self._headers:  # one pass: this runs for every request
            if name == b"content-length":
                if value.isdigit() and int(value) > self._max_body():
                    raise _Refused(413, b"the request body is over the limit of %d bytes" % self._max_body())
            elif name == b"expect":
                expect = value.lower() == b"100-continue"
            elif name == b"content-encoding":
                try:
                    self._coding = httplimits.check_coding(value)
                except httplimits.CodingError as error:
                    raise _Refused(error.status, str(error).encode()) from None
            elif name == b"transfer-encoding" and value.strip().lower() != b"chunked":
                raise _Refused(501, b"transfer-encoding %s is not supported; send chunked or a content-length"
                                    % value.strip())
        if self._busy or self._queue:  # with requests ahead of it, answering now would reorder answers
            self._unchecked, self._continue = True, expect
            return
        self._check(expect)

    def _check(self, expect: bool) -> None:
        """The precheck, once this request is the one being read; then 100 Continue if it asked."""
        early = self._precheck(self._url.partition(b"?")[0], self._headers)
        if early is not None:
            raise _Answered(early)
        self._prechecked = True
        if expect:
            assert self._transport is not None
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max_body():
            raise _Refused(413, b"the request body is over the limit of %d bytes" % self._max_body())
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._reading_head, self._unchecked = True, False
        path = self._url.partition(b"?")[0]
        body, headers = b"".join(self._body), self._headers
        if self._coding is not None:
            try:
                body = httplimits.decode(self._coding, body, self._max_body())
            except httplimits.CodingError as error:
                raise _Refused(error.status, str(error).encode()) from None
            # The handler gets the body decoded, described as it now is.
            headers = [(k, v) for k, v in headers if k not in (b"content-encoding", b"content-length")]
            headers.append((b"content-length", b"%d" % len(body)))
        request = Request(self._parser.get_method(), self._url, path, headers, body, self._prechecked)
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
        if self._final is not None or self._eof or self._unchecked:
            self._caught_up()

    def _caught_up(self) -> None:
        """Every request received is answered: the refusal that waited behind them, the close a half-closed
        client is owed, or the check of the request now being read."""
        if self._transport is None or self._transport.is_closing():
            return
        if self._final is not None:
            self._transport.write(self._final)
            self._linger()
        elif self._eof:
            self._transport.close()
        elif self._unchecked:
            self._unchecked = False
            try:
                self._check(self._continue)
            except _Answered as answered:
                self._fail(answered.answer)

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
        self._fail((status, [(b"content-type", b"application/json")], b'{"error": "%s"}' % message))

    def _fail(self, answer: Answer) -> None:
        """Refuse the request being read: after the answers of those ahead of it, in order; then close (its body,
        unread, cannot be told from a next request)."""
        try:
            head = self._parser.get_method() == b"HEAD"
        except httptools.HttpParserError:
            head = False
        self._final = render(*answer, close=True, head=head)
        if not self._busy and not self._queue:
            self._caught_up()

    def _linger(self) -> None:
        """Close after the refusal: the writing side at once, the reading side once the client stops sending (or
        after LINGER_S), so that what it still sends does not reset the connection before it reads the answer."""
        assert self._transport is not None
        if self._transport.can_write_eof():
            self._transport.write_eof()
            asyncio.get_running_loop().call_later(httplimits.LINGER_S, self._transport.close)
        else:
            self._transport.close()

    def _watch_head(self) -> None:
        """A head came in part: it must be whole within HEAD_TIMEOUT_S. The timer is made only for heads split
        across reads, never for a request that comes in one."""
        loop = asyncio.get_running_loop()
        if self._head_since is None:
            self._head_since = loop.time()
        if self._head_timer is None:
            self._head_timer = loop.call_later(httplimits.HEAD_TIMEOUT_S, self._head_overdue, self._head_since)

    def _head_overdue(self, since: float) -> None:
        self._head_timer = None
        if self._final is not None or self._transport is None or self._transport.is_closing() or not self._began:
            return
        if self._head_since is not None and self._head_since != since:  # a later head: its own deadline
            remaining = self._head_since + httplimits.HEAD_TIMEOUT_S - asyncio.get_running_loop().time()
            self._head_timer = asyncio.get_running_loop().call_later(max(remaining, 0.0), self._head_overdue,
                                                                     self._head_since)
            return
        self._refuse(408, b"the request head was not complete within %d seconds" % httplimits.HEAD_TIMEOUT_S)

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


class _Refused(Exception):
    def __init__(self, status: int, message: bytes) -> None:
        super().__init__()
        self.status, self.message = status, message


class _Answered(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__()
        self.answer = answer


async def serve(sock: socket.socket, handler: Handler, precheck: Precheck, max_body: Callable[[], int],
                stop: asyncio.Event | None = None, notice: tuple[Callable[[], None], float] | None = None) -> None:
    """Serve on the listening socket until SIGTERM or SIGINT (or `stop` is set), then drain requests in flight
    (up to DRAIN_S). With `notice` (a callback and seconds), a stop is announced first: the callback runs and
    requests are still taken that long, so a front end that learns of the stop late sends nothing to a closed
    port."""
    loop = asyncio.get_running_loop()
    live: set[_Connection] = set()
    server = await listen(sock, handler, precheck, max_body, live)
    stop = stop or asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if notice is not None and notice[1] > 0:
        announce, seconds = notice
        announce()
        await asyncio.sleep(seconds)
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

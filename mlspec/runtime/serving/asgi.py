"""The scoring server's ASGI side: raw replies, bounded bodies, and its app run on mlspec's HTTP/1.1 server."""

from __future__ import annotations

import asyncio
import signal
import socket
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

import orjson

from mlspec.runtime.httpserver import Handler, Reply, Request, serve

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Header = tuple[bytes, bytes]

JSON = b"application/json"
KEEP_ALIVE_S = 75  # idle keep-alive connections live longer than a proxy's pool keeps them (no reuse races)


class TooLarge(Exception):
    """The request body is over the limit (answered 413)."""


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body, refused with TooLarge as soon as it is known to be over `limit` bytes."""
    length = header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise TooLarge()
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge()
        parts.append(chunk)
    return b"".join(parts)


async def reply(send: Send, status: int, body: bytes, content_type: bytes = JSON,
                headers: Iterable[Header] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def reply_json(send: Send, status: int, payload: Any, headers: Iterable[Header] = ()) -> None:
    await reply(send, status, orjson.dumps(payload), JSON, headers)


async def lifespan(receive: Receive, send: Send, startup: Callable[[], None], shutdown: Callable[[], None]) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


App = Callable[[Scope, Receive, Send], Coroutine[Any, Any, None]]


def asgi_handler(app: App) -> Handler:
    """An ASGI app as a handler of mlspec's HTTP server: a task per request, the body whole (the server has read
    it, within its limit), the response collected and written once."""
    tasks: set[asyncio.Task[None]] = set()  # held until done: the loop keeps only weak references

    def handle(request: Request, reply: Reply) -> None:
        task = asyncio.get_running_loop().create_task(_exchange(app, request, reply))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return handle


async def _exchange(app: App, request: Request, reply: Reply) -> None:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
             "method": request.method.decode("latin-1"), "path": request.path.decode("latin-1"),
             "raw_path": request.path, "query_string": request.target.partition(b"?")[2],
             "headers": request.headers, "server": None, "client": None}
    delivered = answered = False
    status, headers, parts = 500, [], []

    async def receive() -> Message:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}  # the response is all that is left to happen
        delivered = True
        return {"type": "http.request", "body": request.body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status, headers, answered
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = [h for h in message.get("headers", ()) if h[0].lower() != b"content-length"]
        elif message["type"] == "http.response.body" and not answered:
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                answered = True
                reply((status, headers, b"".join(parts)))

    problem = "sent no response"
    try:
        await app(scope, receive, send)
    except Exception as error:  # the app's own bug: a 500 (the server keeps serving), the traceback in the log
        traceback.print_exc()
        problem = type(error).__name__
    if not answered:  # (a reply after the app's own would answer the connection's next request)
        reply((500, [(b"content-type", JSON)], orjson.dumps({"error": f"internal error: {problem}"})))


async def run_asgi(sock: socket.socket, app: App, max_body: int, stop: asyncio.Event,
                   accept_after: asyncio.Event | None = None,
                   notice: tuple[Callable[[], None], float] | None = None) -> None:
    """Serve `app` on the listening socket: its lifespan startup, requests until SIGTERM/SIGINT or `stop`, a drain
    of those in flight, its lifespan shutdown. With `accept_after`, connections are taken only once it is set (or
    not at all if `stop` comes first). `notice`: as `httpserver.serve` takes it."""
    events: asyncio.Queue[Message] = asyncio.Queue()
    done: asyncio.Queue[Message] = asyncio.Queue()

    async def send(message: Message) -> None:
        await done.put(message)

    lifespan_task = asyncio.get_running_loop().create_task(app({"type": "lifespan"}, events.get, send))
    await events.put({"type": "lifespan.startup"})
    await done.get()
    try:
        if accept_after is not None:
            for sig in (signal.SIGTERM, signal.SIGINT):  # a stop while waiting ends the process cleanly too
                asyncio.get_running_loop().add_signal_handler(sig, stop.set)
            waits = [asyncio.ensure_future(accept_after.wait()), asyncio.ensure_future(stop.wait())]
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for waiting in pending:
                waiting.cancel()
        if not stop.is_set():
            await serve(sock, asgi_handler(app), lambda path, headers: None, lambda: max_body, stop, notice)
    finally:
        await events.put({"type": "lifespan.shutdown"})
        await done.get()
        await lifespan_task

"""What the scoring server and the gateway share: raw ASGI replies, bounded bodies, uvicorn on a pre-bound socket."""

from __future__ import annotations

import socket
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

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


def uvicorn_server(app: Any) -> Any:
    """A uvicorn server for a raw ASGI app: uvloop and httptools, no access log, no per-response extras."""
    import uvicorn

    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="on", access_log=False,
                            log_level="warning", server_header=False, date_header=False,
                            timeout_keep_alive=KEEP_ALIVE_S, timeout_graceful_shutdown=10, proxy_headers=False)
    return uvicorn.Server(config)

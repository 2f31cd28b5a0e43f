"""mlspec's HTTP server with a small handler, run as its own process for the raw-socket tests of its limits.

Usage: python http_echo_server.py PORT_FILE [HEAD_TIMEOUT_S]. Routes: /echo answers at once with what it got,
/slow answers the same 0.3 s later, /secret needs `x-key: yes` (checked by the precheck, before the body).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import sys
from pathlib import Path

from mlspec.runtime import httplimits
from mlspec.runtime.httpserver import Answer, Headers, Reply, Request, serve

MAX_BODY = 1 << 20


def handle(request: Request, reply: Reply) -> None:
    if request.path not in (b"/echo", b"/slow", b"/secret"):
        reply((404, [], b"no route"))
        return
    answer: Answer = (200, [(b"content-type", b"application/json")], json.dumps({
        "method": request.method.decode(), "target": request.target.decode("latin-1"), "size": len(request.body),
        "sha256": hashlib.sha256(request.body).hexdigest(),
        "headers": sorted(name.decode("latin-1") for name, _ in request.headers),
        "content_length": (request.header(b"content-length") or b"").decode()}).encode())
    if request.path == b"/slow":
        asyncio.get_running_loop().call_later(0.3, reply, answer)
    else:
        reply(answer)


def precheck(path: bytes, headers: Headers) -> Answer | None:
    if path == b"/secret" and (b"x-key", b"yes") not in headers:
        return 401, [], b"no key"
    return None


async def main() -> None:
    if len(sys.argv) > 2:
        httplimits.HEAD_TIMEOUT_S = float(sys.argv[2])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    Path(sys.argv[1]).write_text(str(sock.getsockname()[1]))
    await serve(sock, handle, precheck, lambda: MAX_BODY)


if __name__ == "__main__":
    asyncio.run(main())

"""The published MLflow's proxy: only basic authentication with the workspace's user and password gets through, to
the tracking server with a Host it allows; bodies go both ways whole (a large answer streamed); /health is open."""

from __future__ import annotations

import base64
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from mlspec.runtime.keys import key_hash
from mlspec.runtime.tracking_proxy import authorized, serve

PASSWORD = "s3cret-Password"
BIG = b"x" * (3 * 2**20 + 17)


class Upstream(BaseHTTPRequestHandler):
    """A stand-in tracking server that echoes what reached it."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        self._answer(b"")

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _answer(self, body: bytes) -> None:
        self.seen.append({"path": self.path, "host": self.headers["Host"], "body": body,
                          "authorization": self.headers.get("Authorization")})
        data = BIG if self.path == "/big" else b"echo:" + body
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Upstream", "yes")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def _background(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def proxy() -> Iterator[str]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    _background(upstream)
    front = serve(f"http://127.0.0.1:{upstream.server_port}", "127.0.0.1", 0, "mlspec", key_hash(PASSWORD))
    _background(front)
    Upstream.seen.clear()
    yield f"http://127.0.0.1:{front.server_port}"
    front.shutdown()
    upstream.shutdown()
    front.server_close()
    upstream.server_close()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _call(url: str, body: bytes | None = None, authorization: str | None = None) -> tuple[int, bytes, Any]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if authorization:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def test_without_the_password_nothing_reaches_the_server(proxy: str) -> None:
    for authorization in (None, _basic("mlspec", "wrong"), _basic("someone", PASSWORD), "Bearer " + PASSWORD,
                          "Basic not-base64!"):
        status, _, headers = _call(f"{proxy}/api/2.0/mlflow/experiments/search", authorization=authorization)
        assert status == 401, authorization
        assert headers["WWW-Authenticate"].startswith("Basic realm=")  # a browser asks for the user and password
    assert Upstream.seen == []


def test_with_the_password_requests_and_bodies_pass_both_ways(proxy: str) -> None:
    good = _basic("mlspec", PASSWORD)
    status, answer, headers = _call(f"{proxy}/api/2.0/mlflow/runs/create?x=1", b'{"a": 1}', good)
    assert (status, answer, headers["X-Upstream"]) == (200, b'echo:{"a": 1}', "yes")
    seen = Upstream.seen[-1]
    assert seen["path"] == "/api/2.0/mlflow/runs/create?x=1" and seen["body"] == b'{"a": 1}'
    assert seen["host"].startswith("127.0.0.1:")  # the server's own address, which its --allowed-hosts names
    assert seen["authorization"] is None  # the password goes no further than the proxy
    status, answer, _ = _call(f"{proxy}/big", authorization=good)
    assert status == 200 and answer == BIG


def test_health_is_open_and_is_the_servers(proxy: str) -> None:
    status, answer, _ = _call(f"{proxy}/health")
    assert status == 200 and answer == b"echo:"
    assert Upstream.seen[-1]["path"] == "/health"


def test_authorized_compares_user_and_password() -> None:
    digest = key_hash(PASSWORD)
    assert authorized(_basic("mlspec", PASSWORD), "mlspec", digest)
    assert authorized(_basic("mlspec", PASSWORD).replace("Basic", "basic"), "mlspec", digest)
    assert not authorized(_basic("mlspec", PASSWORD + "x"), "mlspec", digest)
    assert not authorized(None, "mlspec", digest)
    assert not authorized("Basic " + base64.b64encode(b"\xff\xfe").decode(), "mlspec", digest)

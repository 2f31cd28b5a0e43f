"""The workspace's MLflow as the host sees it: a reverse proxy that lets through only HTTP basic authentication with
the workspace's tracking password, so `mlflow ui` users and MLflow clients (MLFLOW_TRACKING_USERNAME/PASSWORD) reach
a server that itself checks nobody.

The proxy holds only the password's SHA-256 (like the gateway's key hashes); `/health` is answered unauthenticated,
for the container's healthcheck, and says whether the server behind answers.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import http.client
import os
import signal
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mlspec.runtime.keys import key_hash

REALM = "mlspec tracking"
CHUNK = 1 << 16
UPSTREAM_TIMEOUT_S = 300.0  # artifact uploads and downloads through the server can be large
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "host", "authorization", "content-length"})


def authorized(header: str | None, user: str, password_hash: str) -> bool:
    """Whether an Authorization header carries basic credentials for `user` with the password hashed as given."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given_user, _, given_password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    same_user = hmac.compare_digest(given_user.encode(), user.encode())
    return hmac.compare_digest(key_hash(given_password), password_hash) and same_user


class ProxyHandler(BaseHTTPRequestHandler):
    """One client connection: each request checked, then sent on to the tracking server and its answer streamed."""

    protocol_version = "HTTP/1.1"
    upstream: urllib.parse.SplitResult
    user: str
    password_hash: str

    def do_GET(self) -> None:
        self._proxy()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def _proxy(self) -> None:
        path = self.path.split("?", 1)[0]
        if path != "/health" and not authorized(self.headers.get("Authorization"), self.user, self.password_hash):
            self._refuse()
            return
        body = self._body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Host"] = self.upstream.netloc  # a host the server's --allowed-hosts names
        if body is not None:
            headers["Content-Length"] = str(len(body))
        connection = http.client.HTTPConnection(self.upstream.hostname or "", self.upstream.port or 80,
                                                timeout=UPSTREAM_TIMEOUT_S)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            answer = connection.getresponse()
        except OSError as error:
            self._plain(502, f"the tracking server cannot be reached: {error}\n")
            return
        try:
            self._relay(answer)
        finally:
            connection.close()

    def _body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _relay(self, answer: http.client.HTTPResponse) -> None:
        """The server's answer, chunked as it arrives (a large artifact is never held whole)."""
        self.send_response(answer.status, answer.reason)
        for key, value in answer.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        if self.command == "HEAD" or answer.status in (204, 304):
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while block := answer.read(CHUNK):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
        self.wfile.write(b"0\r\n\r\n")

    def _refuse(self) -> None:
        self._plain(401, "the workspace's MLflow asks for its user name and password (basic authentication)\n",
                    {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})

    def _plain(self, status: int, text: str, extra: dict[str, str] | None = None) -> None:
        data = text.encode()
        self.send_response(status)
        for key, value in {"Content-Type": "text/plain; charset=utf-8", **(extra or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def serve(upstream: str, host: str, port: int, user: str, password_hash: str) -> ThreadingHTTPServer:
    """A server ready to `serve_forever()` (bound already, so a test may read its port)."""
    handler = type("BoundProxyHandler", (ProxyHandler,), {
        "upstream": urllib.parse.urlsplit(upstream), "user": user, "password_hash": password_hash})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True, help="the tracking server, e.g. http://mlflow:5000")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-hash-env", required=True,
                        help="the variable holding the SHA-256 (hex) of the password")
    args = parser.parse_args(argv)
    password_hash = os.environ.get(args.password_hash_env, "")
    if len(password_hash) != 64:
        parser.error(f"${args.password_hash_env} must hold the password's SHA-256 in hex")
    server = serve(args.upstream, args.host, args.port, args.user, password_hash)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


if __name__ == "__main__":
    main()

"""mlspec's HTTP server against hostile and unusual clients, over raw sockets: head limits, slow heads,
pipelined errors, 100 Continue, half-closed clients and request body codings."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlspec.runtime import httplimits

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
Response = tuple[int, dict[str, str], bytes]


class Echo:
    def __init__(self, tmp: Path, *args: str) -> None:
        port_file = tmp / f"port-{time.monotonic_ns()}"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen([sys.executable, str(HERE / "http_echo_server.py"), str(port_file), *args],
                                        env=env)
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            assert time.monotonic() < deadline and self.process.poll() is None, "the server did not start"
            time.sleep(0.02)
        self.port = int(port_file.read_text())

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Echo]:
    server = Echo(tmp_path_factory.mktemp("echo"))
    yield server
    server.stop()


class Reader:
    """HTTP/1.1 responses read off a socket one by one (interim 1xx ones included)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def next(self) -> Response | None:
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                assert not self.buffer, f"the connection closed mid-response: {self.buffer[:200]!r}"
                return None
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        status = int(lines[0].split()[1])
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            assert self._fill(), "the connection closed mid-body"
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body


def exchange(echo: Echo, data: bytes, count: int = 1) -> list[Response]:
    with echo.connect() as sock:
        sock.sendall(data)
        reader = Reader(sock)
        found = []
        for _ in range(count):
            response = reader.next()
            if response is None:
                break
            found.append(response)
        return found


def get(path: str = "/echo", extra: bytes = b"") -> bytes:
    return b"GET %s HTTP/1.1\r\nhost: t\r\n%s\r\n" % (path.encode(), extra)


def post(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n%s\r\n%s" % (path.encode(), len(body), extra, body)


def test_a_huge_unfinished_header_is_431_at_once_and_stalls_no_one(echo: Echo) -> None:
    before = echo.rss_kib()
    attacker = echo.connect()
    attacker.sendall(b"GET /echo HTTP/1.1\r\nhost: t\r\nx-big: ")
    sent = threading.Event()

    def stream() -> None:
        chunk = b"a" * 65536
        try:
            for _ in range(16):  # 1 MiB of one header's value, never finished
                attacker.sendall(chunk)
        except OSError:
            pass  # the server closed its side: it stopped reading, as it should
        sent.set()

    started = time.monotonic()
    threading.Thread(target=stream, daemon=True).start()
    time.sleep(0.05)
    waits = []
    for _ in range(5):  # meanwhile another client is answered at once
        began = time.monotonic()
        (status, _, _), = exchange(echo, get())
        waits.append(time.monotonic() - began)
        assert status == 200
    response = Reader(attacker).next()
    assert response is not None and response[0] == 431, response
    assert time.monotonic() - started < 2.0
    assert max(waits) < 0.1, waits
    sent.wait(5)
    attacker.close()
    assert echo.rss_kib() - before < 4 * 1024  # KiB: nothing like the header was buffered


def test_a_long_url_is_414(echo: Echo) -> None:
    (status, _, body), = exchange(echo, get("/echo?q=" + "x" * httplimits.MAX_URL))
    assert status == 414 and b"request target" in body
    (status, _, _), = exchange(echo, get("/echo?q=" + "x" * (httplimits.MAX_URL - 100)))
    assert status == 200


def test_too_many_or_too_long_headers_are_431(echo: Echo) -> None:
    many = b"".join(b"x-h%d: v\r\n" % i for i in range(httplimits.MAX_HEADERS + 1))
    (status, _, _), = exchange(echo, get(extra=many))
    assert status == 431
    (status, _, _), = exchange(echo, get(extra=b"x-long: %s\r\n" % (b"v" * httplimits.MAX_HEADER_LINE)))
    assert status == 431
    fine = b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 500) for i in range(90))  # 45 KiB in all: within the limits
    (status, _, _), = exchange(echo, get(extra=fine))
    assert status == 200


def test_a_head_sent_too_slowly_is_408(tmp_path: Path) -> None:
    server = Echo(tmp_path, "0.5")
    try:
        with server.connect() as sock:
            started = time.monotonic()
            sock.sendall(b"GET /echo HTTP/1.1\r\n")

            def trickle() -> None:
                try:
                    for _ in range(30):  # a header line every 0.1 s: never done
                        sock.sendall(b"x-a: b\r\n")
                        time.sleep(0.1)
                except OSError:
                    pass

            threading.Thread(target=trickle, daemon=True).start()
            response = Reader(sock).next()
            assert response is not None and response[0] == 408
            assert time.monotonic() - started < 2.0
        (status, _, _), = exchange(server, get())  # a prompt client is served as ever
        assert status == 200
    finally:
        server.stop()


def test_a_malformed_request_behind_a_valid_one_is_answered_after_it(echo: Echo) -> None:
    responses = exchange(echo, get("/slow") + b"NOT HTTP AT ALL\r\n\r\n", 2)
    assert [status for status, _, _ in responses] == [200, 400]
    responses = exchange(echo, get("/slow") + b"POST /echo HTTP/1.1\r\ncontent-length: 9999999\r\n\r\n", 2)
    assert [status for status, _, _ in responses] == [200, 413]
    responses = exchange(echo, get("/slow") + get("/echo?" + "x" * httplimits.MAX_URL), 2)
    assert [status for status, _, _ in responses] == [200, 414]


def test_100_continue_only_for_the_request_being_read(echo: Echo) -> None:
    with echo.connect() as sock:
        reader = Reader(sock)
        sock.sendall(get("/slow") + b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\n"
                                    b"expect: 100-continue\r\n\r\n")
        first = reader.next()
        assert first is not None and first[0] == 200  # not a 100 for the request queued behind it
        interim = reader.next()
        assert interim is not None and interim[0] == 100
        sock.sendall(b"hello")
        last = reader.next()
        assert last is not None and last[0] == 200 and json.loads(last[2])["size"] == 5
    refused = exchange(echo, get("/slow") + b"POST /secret HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\n"
                                            b"expect: 100-continue\r\n\r\n", 3)
    assert [status for status, _, _ in refused] == [200, 401]  # refused by the precheck: no 100 first


def test_a_half_closed_client_gets_its_answers(echo: Echo) -> None:
    with echo.connect() as sock:
        sock.sendall(get("/slow") + get("/echo"))
        sock.shutdown(socket.SHUT_WR)
        reader = Reader(sock)
        assert [r[0] for r in (reader.next(), reader.next()) if r is not None] == [200, 200]
        assert reader.next() is None  # then the server closes


@pytest.mark.parametrize("coding, encode", [
    (b"gzip", gzip.compress), (b"deflate", zlib.compress),
    (b"deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some clients send it
])
def test_gzip_and_deflate_bodies_are_decoded(echo: Echo, coding: bytes, encode: object) -> None:
    body = json.dumps({"inputs": [[1.5] * 4] * 200}).encode()
    (status, _, answer), = exchange(echo, post("/echo", encode(body), b"content-encoding: %s\r\n" % coding))  # type: ignore[operator]
    assert status == 200
    seen = json.loads(answer)
    assert seen["size"] == len(body) and "content-encoding" not in seen["headers"]
    assert seen["content_length"] == str(len(body))


def test_a_zip_bomb_is_413_and_unknown_codings_are_refused(echo: Echo) -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros in about 64 KiB
    (status, _, _), = exchange(echo, post("/echo", bomb, b"content-encoding: gzip\r\n"))
    assert status == 413
    (status, _, _), = exchange(echo, post("/echo", b"abc", b"content-encoding: br\r\n"))
    assert status == 415
    (status, _, _), = exchange(echo, post("/echo", b"not gzip", b"content-encoding: gzip\r\n"))
    assert status == 400
    chunked_gzip = b"POST /echo HTTP/1.1\r\nhost: t\r\ntransfer-encoding: gzip\r\n\r\n"
    (status, _, _), = exchange(echo, chunked_gzip)
    assert status == 501


def test_a_pipelined_body_does_not_count_against_the_next_head(echo: Echo) -> None:
    body = b"b" * 60_000
    first = post("/echo", body)
    headers = b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 500) for i in range(80))
    second_head = b"POST /echo HTTP/1.1\r\nhost: t\r\n" + headers
    with echo.connect() as sock:
        sock.sendall(first[:20])  # the first head in two reads
        time.sleep(0.05)
        sock.sendall(first[20:] + second_head[:20_000])
        time.sleep(0.05)
        sock.sendall(second_head[20_000:] + b"content-length: 0\r\n\r\n")  # about 40 KiB of head in all
        reader = Reader(sock)
        answers = [reader.next(), reader.next()]
    assert [a[0] for a in answers if a is not None] == [200, 200]

"""The gateway's HTTP handling, as a real process in front of a replica this test controls: a plain HTTP/1.1
server that can be slow, or close its keep-alive connections. Timeouts, pipelining, body limits, draining."""

from __future__ import annotations

import gzip
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from test_serving_support import Server, metric, start

from mlspec.runtime.keys import key_hash

pytestmark = pytest.mark.e2e
KEY = "protocol-key-0123456789"
AUTH = {"authorization": f"Bearer {KEY}"}


class _Replica(BaseHTTPRequestHandler):
    """Answers POST /invocations with the body it got and the path it saw; `?sleep=S` first sleeps S seconds,
    `?close=1` closes the connection after answering."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        time.sleep(float(query.get("sleep", ["0"])[0]))
        answer = json.dumps({"path": self.path, "body": body.decode(), "served": self.server.served}).encode()
        self.server.served += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        if query.get("close"):
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def replica() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Replica)
    server.served = 0  # type: ignore[attr-defined]
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def gateway(replica: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("gateway")
    config = folder / "gateway.json"
    config.write_text(json.dumps({"endpoint": "echo", "auth": "key", "key_hashes": [key_hash(KEY)],
                                  "request_timeout": 1.0, "max_body_size": 4096,
                                  "deployments": {"blue": {"weight": 100, "replicas": [replica]}}}))
    served = start("mlspec.runtime.gateway", ["--config", str(config)], folder / "gateway.log")
    try:
        served.wait_ready(30)
        yield served
    finally:
        served.stop()


def _port(url: str) -> int:
    return int(url.rpartition(":")[2])


def _read_responses(sock: socket.socket, count: int, timeout: float = 10) -> list[tuple[int, bytes]]:
    """`count` responses off a raw connection: (status, body) each, read by content-length."""
    sock.settimeout(timeout)
    data, answers = b"", []
    while len(answers) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(answers)} responses"
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(v) for k, _, v in (line.partition(b":") for line in lines[1:])
                      if k.strip().lower() == b"content-length")
        while len(data) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection closed inside a body"
            data += chunk
        answers.append((int(lines[0].split()[1]), data[:length]))
        data = data[length:]
    return answers


def test_a_replica_slower_than_the_request_timeout_is_a_504(gateway: Server) -> None:
    started = time.monotonic()
    slow = httpx.post(f"{gateway.url}/invocations?sleep=3", content=b"{}", headers=AUTH, timeout=10)
    assert slow.status_code == 504 and "did not answer within 1s" in slow.json()["error"]
    assert time.monotonic() - started < 2.5
    assert httpx.post(f"{gateway.url}/invocations", content=b"{}", headers=AUTH, timeout=10).status_code == 200


def test_pipelined_requests_are_answered_in_order(gateway: Server) -> None:
    requests = b"".join(b"POST /invocations?sleep=%s HTTP/1.1\r\nhost: x\r\nauthorization: Bearer %s\r\n"
                        b"content-length: %d\r\n\r\n%s" % (delay, KEY.encode(), len(body), body)
                        for delay, body in ((b"0.3", b"first"), (b"0", b"second"), (b"0.1", b"third")))
    with socket.create_connection(("127.0.0.1", _port(gateway.url))) as sock:
        sock.sendall(requests)
        answers = _read_responses(sock, 3)
    assert [status for status, _ in answers] == [200, 200, 200]
    assert [json.loads(body)["body"] for _, body in answers] == ["first", "second", "third"]


def test_a_body_over_the_limit_is_413_before_it_is_read(gateway: Server) -> None:
    with socket.create_connection(("127.0.0.1", _port(gateway.url))) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nhost: x\r\nauthorization: Bearer %s\r\n"
                     b"content-length: 1000000\r\n\r\n" % KEY.encode())  # the body never comes
        [(status, body)] = _read_responses(sock, 1)
    assert status == 413 and b"over the limit of 4096 bytes" in body


def test_a_replica_closing_its_connection_costs_no_request(gateway: Server) -> None:
    # Each answer closes the replica's side, so every later request finds its pooled connection gone.
    answers = [httpx.post(f"{gateway.url}/invocations?close=1", content=b"{}", headers=AUTH, timeout=10)
               for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5


def test_requests_and_errors_are_counted_on_metrics(gateway: Server) -> None:
    def count(status: str) -> float:
        text = httpx.get(f"{gateway.url}/metrics", headers=AUTH, timeout=10).text
        return metric(text, "mlspec_gateway_requests_total", deployment="blue", status=status)

    before = count("200")
    for _ in range(3):
        assert httpx.post(f"{gateway.url}/invocations", content=b"{}", headers=AUTH, timeout=10).status_code == 200
    assert count("200") == before + 3
    assert count("504") >= 1  # the slow request of the timeout test


def test_sigterm_lets_a_request_in_flight_finish(replica: str, tmp_path: Path) -> None:
    config = tmp_path / "gateway.json"
    config.write_text(json.dumps({"endpoint": "echo", "auth": "none",
                                  "deployments": {"blue": {"weight": 100, "replicas": [replica]}}}))
    served = start("mlspec.runtime.gateway", ["--config", str(config)], tmp_path / "gateway.log")
    served.wait_ready(30)
    answers: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: answers.append(
        httpx.post(f"{served.url}/invocations?sleep=1", content=b"{}", timeout=10)))
    worker.start()
    time.sleep(0.4)  # the request is at the replica
    served.process.send_signal(signal.SIGTERM)
    worker.join(10)
    assert served.process.wait(10) == 0
    assert [a.status_code for a in answers] == [200]


def test_a_known_path_with_the_wrong_method_is_405_with_allow(gateway: Server) -> None:
    for method, path, allow in [("GET", "/invocations", "POST"), ("PUT", "/score", "POST"),
                                ("POST", "/health", "GET, HEAD"), ("DELETE", "/metrics", "GET")]:
        answer = httpx.request(method, f"{gateway.url}{path}", headers=AUTH, timeout=10)
        assert answer.status_code == 405 and answer.headers.get("allow") == allow, (method, path, answer.text)


def test_a_huge_header_is_431_before_authentication(gateway: Server) -> None:
    with socket.create_connection(("127.0.0.1", _port(gateway.url))) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 200_000)  # no key, never ended
        [(status, body)] = _read_responses(sock, 1)
    assert status == 431 and b"over the limit" in body
    assert httpx.post(f"{gateway.url}/invocations", content=b"{}", headers=AUTH, timeout=10).status_code == 200


def test_a_gzip_body_reaches_the_replica_decoded(gateway: Server) -> None:
    answer = httpx.post(f"{gateway.url}/invocations", content=gzip.compress(b'{"rows": [1, 2]}'),
                        headers={**AUTH, "content-encoding": "gzip"}, timeout=10)
    assert answer.status_code == 200 and answer.json()["body"] == '{"rows": [1, 2]}'
    bomb = httpx.post(f"{gateway.url}/invocations", content=gzip.compress(b" " * 100_000),
                      headers={**AUTH, "content-encoding": "gzip"}, timeout=10)
    assert bomb.status_code == 413  # decoded, it is over the gateway's 4096 bytes

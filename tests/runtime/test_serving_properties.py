"""No request ever gets a 5xx: the scoring server and the gateway in front of it, fed by schemathesis from the
server's OpenAPI document and by hypothesis with raw HTTP (any method, path, header and body)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from test_serving_support import MODEL, IrisStore, Server, shared_store, start_gateway, start_scoring

from mlspec.runtime import serving

pytestmark = pytest.mark.e2e
KEY = "property-key-0123456789"
AUTH = {"authorization": f"Bearer {KEY}"}
LIMIT = 64 * 1024  # the server's --max-body-size here: large bodies are generated too


def examples(count: int) -> settings:
    """A fixed number of examples, the same ones every run (derandomised), so a run takes seconds, not minutes."""
    return settings(max_examples=count, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))



@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> IrisStore:
    return shared_store(tmp_path_factory)


@pytest.fixture(scope="module")
def server(store: IrisStore) -> Iterator[Server]:
    served = start_scoring(store, f"models:/{MODEL}/1", store.root / "properties.log", "--name", "blue",
                           "--max-body-size", str(LIMIT))
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def gateway(server: Server, store: IrisStore) -> Iterator[Server]:
    served = start_gateway(server, KEY, store.root / "properties-gateway.json")
    try:
        served.wait_ready(30)
        yield served
    finally:
        served.stop()


# --- schemathesis, from the document the server serves -----------------------------------------------------------

# Loaded from the package rather than from a running server: schemathesis's fixture-based loading does not work
# with this pytest; the document served is checked to be this one.
OPENAPI = Path(serving.__file__).with_name("openapi.json")
api_schema = schemathesis.openapi.from_path(OPENAPI)


def test_the_server_serves_its_openapi_document(server: Server) -> None:
    import httpx

    answer = httpx.get(f"{server.url}/openapi.json")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json() == json.loads(OPENAPI.read_text())
    assert answer.json()["openapi"].startswith("3.")


def _aimed(case: Any) -> Any:
    """Most generated names would only ever meet a 404: aim v2 model routes at the model that is served."""
    if "model_name" in (case.path_parameters or {}):
        case.path_parameters = {**case.path_parameters, "model_name": MODEL,
                                **({"model_version": "1"} if "model_version" in case.path_parameters else {})}
    return case


@api_schema.parametrize()
@examples(30)
def test_schemathesis_scoring_server_never_answers_5xx(case: Any, server: Server) -> None:
    _aimed(case).call_and_validate(base_url=server.url, checks=[not_a_server_error])


@api_schema.parametrize()
@examples(30)
def test_schemathesis_gateway_never_answers_5xx(case: Any, gateway: Server) -> None:
    if case.path in ("/ping", "/openapi.json") or case.path.startswith("/v2/health"):
        return  # the scoring server's own routes; the gateway answers /health for itself
    _aimed(case).call_and_validate(base_url=gateway.url, headers=AUTH, checks=[not_a_server_error])


# --- hypothesis, raw HTTP ------------------------------------------------------------------------------------------

ROUTES = ["/invocations", "/score", "/health", "/ping", "/metrics", "/openapi.json", "/v2", "/v2/health/live",
          "/v2/health/ready", f"/v2/models/{MODEL}", f"/v2/models/{MODEL}/ready", f"/v2/models/{MODEL}/infer",
          f"/v2/models/{MODEL}/versions/1/infer", "/v2/models/blue/infer", "/v2/models/", "/v2/models//infer"]
_segment = st.text(st.sampled_from("abcz09-_.%~:@!$&'()*+,;=/"), max_size=12)
paths = st.one_of(
    st.sampled_from(ROUTES),
    st.builds(lambda route, extra: route + extra, st.sampled_from(ROUTES),
              st.one_of(_segment.map(lambda s: "/" + s), _segment.map(lambda s: "?" + s))),
    _segment.map(lambda s: "/" + s),
)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "PROPFIND"])
content_types = st.sampled_from(["application/json", "text/csv", "application/json; charset=utf-8", "text/plain",
                                 "application/x-www-form-urlencoded", "", "multipart/form-data; boundary=x",
                                 "APPLICATION/JSON", "text/csv; header=absent"])
_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                       st.text(max_size=8))
_json = st.recursive(_json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                         st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                     max_leaves=20)
_keys = st.sampled_from(["dataframe_split", "dataframe_records", "instances", "inputs", "params", "columns", "data",
                         "name", "shape", "datatype", "parameters", "binary_data_size", "id"])
_protocol_json = st.recursive(
    st.one_of(_json_leaf, st.lists(st.lists(st.floats(-10, 10), min_size=4, max_size=4), max_size=3),
              st.sampled_from(["FP64", "FP32", "BYTES", "INT64", "BOOL"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)), max_leaves=25)
bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    _json.map(lambda v: json.dumps(v).encode()),
    _protocol_json.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(_keys, _protocol_json, min_size=1, max_size=3).map(lambda v: json.dumps(v).encode()),
    st.lists(st.lists(st.sampled_from(["1", "2.5", "x", "", "\"a,b\"", "nan", "1e999"]), min_size=1, max_size=5),
             min_size=1, max_size=4).map(lambda rows: "\n".join(",".join(r) for r in rows).encode()),
    st.integers(LIMIT - 10, LIMIT + 10).map(lambda n: b"[" + b"1," * (n // 2) + b"1]"),
)
extra_headers = st.lists(st.tuples(
    st.sampled_from(["x-mlspec-deployment", "azureml-model-deployment", "api-key", "authorization", "accept",
                     "inference-header-content-length", "x-anything", "content-encoding"]),
    st.one_of(st.sampled_from(["blue", "green", "", "0", "12", "-1", "999999", "gzip", KEY, "Bearer x"]),
              st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=10))), max_size=3)


def _exchange(url: str, request: bytes, head_only: bool) -> tuple[int, bytes]:
    """Send raw bytes, read one response (status and body); the connection is not reused."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        return _read_one(sock, head_only)


def _read_one(sock: socket.socket, head_only: bool = False) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)  # byte by byte: nothing of a following response is consumed
        assert chunk, f"the connection closed without an answer: {data!r}"
        data += chunk
    status = int(data.split(b" ", 2)[1])
    length = next((int(line.split(b":", 1)[1]) for line in data.lower().split(b"\r\n")
                   if line.startswith(b"content-length:")), 0)
    body = b""
    while not head_only and len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            break
        body += chunk
    return status, body


def _request(method: str, path: str, content_type: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: test", f"content-length: {len(body)}", *AUTH_LINE]
    if content_type:
        lines.append(f"content-type: {content_type}")
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


AUTH_LINE = [f"authorization: Bearer {KEY}"]


def _check(url: str, method: str, path: str, content_type: str, headers: list[tuple[str, str]], body: bytes) -> None:
    status, answer = _exchange(url, _request(method, path, content_type, headers, body), head_only=method == "HEAD")
    assert 200 <= status < 500, f"{method} {path} ({content_type}, {headers}) {body[:200]!r} -> {status} {answer!r}"


@examples(150)
@given(method=methods, path=paths, content_type=content_types, headers=extra_headers, body=bodies)
def test_raw_http_never_gets_a_5xx_from_the_scoring_server(server: Server, method: str, path: str,
                                                           content_type: str, headers: list[tuple[str, str]],
                                                           body: bytes) -> None:
    _check(server.url, method, path, content_type, headers, body)


@examples(150)
@given(method=methods, path=paths, content_type=content_types, headers=extra_headers, body=bodies)
def test_raw_http_never_gets_a_5xx_from_the_gateway(gateway: Server, method: str, path: str, content_type: str,
                                                    headers: list[tuple[str, str]], body: bytes) -> None:
    _check(gateway.url, method, path, content_type, headers, body)


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"POST /invocations HTTP/1.1\r\ncontent-length: x\r\n\r\n",
    b"POST /invocations HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    b"GET /%zz HTTP/1.1\r\n\r\n",
    b"POST /invocations HTTP/1.1\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
])
def test_malformed_http_is_refused_not_crashed_on(server: Server, gateway: Server, request_bytes: bytes) -> None:
    for url in (server.url, gateway.url):
        try:
            status, _ = _exchange(url, request_bytes, head_only=False)
        except AssertionError:
            status = 400  # closing the connection is a fair answer to bytes that are no HTTP request
        assert 400 <= status < 500, f"{url}: {request_bytes!r} -> {status}"
        assert _exchange(url, b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n", head_only=False)[0] == 200


def test_head_through_the_gateway_is_answered_at_once_with_headers_only(gateway: Server) -> None:
    """A HEAD's response has no body: the gateway once waited for one from the replica (a 504 a minute later)
    and wrote its own error bodies after HEAD responses, where a client reads them as the next response."""
    host, port = gateway.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        for path in (b"/invocations", b"/v2", b"/nope", b"/v2/models/iris-clf/ready"):
            sock.sendall(b"HEAD %s HTTP/1.1\r\nhost: x\r\nauthorization: Bearer %s\r\n\r\n" % (path, KEY.encode()))
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                head += sock.recv(1)
            assert head.split(b" ")[1] in (b"200", b"404", b"405"), head
            if b"connection: close" in head:
                break
            sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")  # the connection carries on
            status, _ = _read_one(sock)
            assert status == 200

"""The scoring server as a real process over HTTP: protocols, errors, limits, metrics, integrity, readiness."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_serving_support import (
    MODEL,
    IrisStore,
    Server,
    metric,
    rows,
    shared_store,
    start_scoring,
)

pytestmark = pytest.mark.e2e
LIMIT = 64 * 1024  # the server's --max-body-size in these tests


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> IrisStore:
    return shared_store(tmp_path_factory)


@pytest.fixture(scope="module")
def server(store: IrisStore) -> Iterator[Server]:
    served = start_scoring(store, f"models:/{MODEL}@champion", store.root / "server.log",
                           "--max-body-size", str(LIMIT), "--name", "blue")
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()


def post(server: Server, path: str, body: bytes | str, content_type: str = "application/json") -> httpx.Response:
    data = body.encode() if isinstance(body, str) else body
    return httpx.post(server.url + path, content=data, headers={"content-type": content_type}, timeout=10)


def test_health_is_503_until_the_model_is_loaded_then_200(server: Server) -> None:
    assert 503 in server.seen and server.seen[-1] == 200  # the port answered before the model was ready
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ready" and health["model"] == MODEL and health["version"] == "1"  # @champion
    assert health["flavor"] == "sklearn" and len(health["sha256"]) == 64
    assert httpx.get(f"{server.url}/v2/health/live").status_code == 200
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{server.url}/v2/models/{MODEL}/ready").status_code == 200


def _formats(frame: Any) -> dict[str, tuple[str, str]]:
    columns, values = list(frame.columns), frame.to_numpy().tolist()
    csv = ",".join(columns) + "\n" + "\n".join(",".join(map(str, row)) for row in values) + "\n"
    return {
        "dataframe_split": (json.dumps({"dataframe_split": {"columns": columns, "data": values}}), "application/json"),
        "dataframe_records": (json.dumps({"dataframe_records": frame.to_dict(orient="records")}), "application/json"),
        "instances": (json.dumps({"instances": values}), "application/json"),
        "inputs rows": (json.dumps({"inputs": values}), "application/json; charset=utf-8"),
        "inputs columns": (json.dumps({"inputs": frame.to_dict(orient="list")}), "application/json"),
        "columns reordered": (json.dumps({"dataframe_split": {"columns": columns[::-1],
                                                              "data": [row[::-1] for row in values]}}), ""),
        "csv": (csv, "text/csv"),
    }


@pytest.mark.parametrize("name", ["dataframe_split", "dataframe_records", "instances", "inputs rows",
                                  "inputs columns", "columns reordered", "csv"])
def test_invocations_match_model_predict(server: Server, store: IrisStore, name: str) -> None:
    frame = rows(store)
    body, content_type = _formats(frame)[name]
    answer = post(server, "/invocations", body, content_type)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": store.expected(frame)}


def test_v2_infer_and_metadata(server: Server, store: IrisStore) -> None:
    frame = rows(store)
    flat = frame.to_numpy().ravel().tolist()
    body = {"id": "r1", "inputs": [{"name": "x", "shape": [len(frame), 4], "datatype": "FP64", "data": flat}]}
    answer = post(server, f"/v2/models/{MODEL}/infer", json.dumps(body))
    assert answer.status_code == 200, answer.text
    output = answer.json()["outputs"][0]
    assert answer.json()["id"] == "r1" and output["shape"] == [len(frame)] and output["datatype"] == "INT64"
    assert output["data"] == store.expected(frame)
    by_column = {"inputs": [{"name": c, "shape": [len(frame)], "datatype": "FP32", "data": frame[c].tolist()}
                            for c in frame.columns]}
    assert post(server, f"/v2/models/{MODEL}/versions/1/infer", json.dumps(by_column)).json()["outputs"][0][
        "data"] == store.expected(frame)
    metadata = httpx.get(f"{server.url}/v2/models/{MODEL}").json()
    assert [i["name"] for i in metadata["inputs"]] == list(frame.columns)
    assert metadata["versions"] == ["1"] and metadata["platform"] == "mlflow-sklearn"
    assert httpx.get(f"{server.url}/v2/models/other").status_code == 404


ROW = "[5.1, 3.5, 1.4, 0.2]"
BAD_BODIES = [
    ("not json", "application/json", 400, "not valid JSON"),
    ("", "application/json", 400, "not valid JSON"),
    ("[1, 2]", "application/json", 400, "JSON object"),
    ('{"rows": [[1, 2, 3, 4]]}', "application/json", 400, "expected exactly one of"),
    (f'{{"instances": [{ROW}], "inputs": [{ROW}]}}', "application/json", 400, "expected exactly one of"),
    ('{"instances": [[5.1, 3.5, 1.4]]}', "application/json", 422, "4 values"),
    ('{"instances": [[5.1, 3.5, 1.4, 0.2, 9]]}', "application/json", 422, "4 values"),
    ('{"instances": [[5.1, 3.5, 1.4, "x"]]}', "application/json", 422, "'x' is not a number"),
    ('{"instances": [[5.1, 3.5, 1.4, null]]}', "application/json", 422, "null is not a number"),
    (f'{{"instances": [{ROW}, [1, 2]]}}', "application/json", 400, "different lengths"),
    ('{"instances": [5.1, 3.5, 1.4, 0.2]}', "application/json", 422, "flat list"),
    ('{"instances": [[[5.1, 3.5, 1.4, 0.2]]]}', "application/json", 422, "nested lists"),
    ('{"instances": []}', "application/json", 422, "no rows"),
    ('{"instances": 7}', "application/json", 400, "list of rows"),
    ('{"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": [[1, 2, 3, 4]]}}', "application/json", 422,
     "missing column"),
    ('{"dataframe_split": {"data": "x"}}', "application/json", 400, "dataframe_split"),
    ('{"dataframe_records": [1, 2]}', "application/json", 400, "dataframe_records"),
    ('{"dataframe_records": [{"sepal length (cm)": 5.1}]}', "application/json", 422, "missing column"),
    (f'{{"inputs": [{ROW}], "params": 3}}', "application/json", 400, "params"),
    ("a,b\n1,2\n", "text/csv", 422, "missing column"),
    ("sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n1,2,x,4\n", "text/csv", 422,
     "not a number"),
    ("sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n1,2,nan,4\n", "text/csv", 422,
     "rejected the input"),
    ("sepal length (cm),sepal width (cm)\n1,2,3\n", "text/csv", 400, "CSV row 1"),
    (b"\xff\xfe", "text/csv", 400, "UTF-8"),
    (f'{{"instances": [{ROW}]}}', "text/plain", 415, "not supported"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "says"), BAD_BODIES,
                         ids=[f"{i}-{b[:28]!r}" for i, (b, *_) in enumerate(BAD_BODIES)])
def test_malformed_bodies_get_a_4xx_naming_the_problem(server: Server, body: str, content_type: str, status: int,
                                                       says: str) -> None:
    answer = post(server, "/invocations", body, content_type)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]


V2_BAD = [
    ('{"inputs": []}', 400, "inputs"),
    ('{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP99", "data": [1, 2, 3, 4]}]}', 400, "datatype"),
    ('{"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}', 422, "holds 8"),
    ('{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ["a", 2, 3, 4]}]}', 422, "not numbers"),
    ('{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}', 422, "4 values"),
    ('{"inputs": [{"name": "x", "shape": "1", "datatype": "FP32", "data": [1]}]}', 400, "shape"),
    ('{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "UINT8", "data": [300, 1, 1, 1]}]}', 400,
     "input 'x': value 300 does not fit UINT8"),
    ('{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT32", "data": [1, 1099511627776, 1, 1]}]}', 400,
     "input 'x': value 1099511627776 does not fit INT32"),
]


@pytest.mark.parametrize(("body", "status", "says"), V2_BAD)
def test_v2_malformed_inputs_get_a_4xx(server: Server, body: str, status: int, says: str) -> None:
    answer = post(server, f"/v2/models/{MODEL}/infer", body)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]


def test_wrong_routes_and_methods(server: Server) -> None:
    assert httpx.get(f"{server.url}/nope").status_code == 404
    for method, path, allow in [("GET", "/invocations", "POST"), ("GET", f"/v2/models/{MODEL}/infer", "POST"),
                                ("POST", "/health", "GET, HEAD"), ("DELETE", f"/v2/models/{MODEL}", "GET, HEAD"),
                                ("POST", "/metrics", "GET")]:
        answer = httpx.request(method, f"{server.url}{path}")
        assert answer.status_code == 405 and answer.headers.get("allow") == allow, (method, path, answer.headers)


def test_body_over_the_limit_is_413(server: Server) -> None:
    big = '{"instances": [' + ",".join([ROW] * (LIMIT // len(ROW) + 10)) + "]}"
    answer = post(server, "/invocations", big)
    assert answer.status_code == 413 and str(LIMIT) in answer.json()["error"]
    assert post(server, "/invocations", f'{{"instances": [{ROW}]}}').status_code == 200  # still serving


def test_metrics_count_requests_errors_and_batches(server: Server) -> None:
    def scrape() -> str:
        answer = httpx.get(f"{server.url}/metrics")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
        return answer.text

    before = scrape()
    for _ in range(3):
        post(server, "/invocations", f'{{"instances": [{ROW}]}}')
    post(server, "/invocations", "not json")
    after = scrape()
    ok = {"route": "invocations", "status": "200"}
    assert metric(after, "mlspec_requests_total", **ok) == metric(before, "mlspec_requests_total", **ok) + 3
    bad = {"route": "invocations", "reason": "bad_request"}
    assert metric(after, "mlspec_request_errors_total", **bad) == metric(before, "mlspec_request_errors_total",
                                                                         **bad) + 1
    assert metric(after, "mlspec_request_duration_seconds_count", route="invocations") >= 4
    assert metric(after, "mlspec_predict_rows_total") >= metric(before, "mlspec_predict_rows_total") + 3
    assert metric(after, "mlspec_model_ready") == 1 and "mlspec_requests_in_flight" in after


def test_concurrent_requests_are_stacked_and_each_gets_its_own_answer(server: Server, store: IrisStore) -> None:
    frame = store.features
    errors: list[str] = []

    def client(offset: int) -> None:
        with httpx.Client(timeout=10) as http:
            for index in range(offset, len(frame), 8):
                row = frame.iloc[[index]]
                answer = http.post(f"{server.url}/invocations", json={"instances": row.to_numpy().tolist()})
                if answer.json() != {"predictions": store.expected(row)}:
                    errors.append(f"row {index}: {answer.text}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

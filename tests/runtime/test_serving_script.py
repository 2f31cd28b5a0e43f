"""Scoring scripts in the real scoring server: init() once on the verified model's folder, run() on the body as
text behind the input schema (422 naming the JSON path), run()'s errors as 500s without a traceback, init()'s as a
replica that does not start."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_serving_support import MODEL, IrisStore, Server, rows, shared_store, start_scoring

pytestmark = pytest.mark.e2e

SCRIPT = '''
import json
import os
import pickle
from pathlib import Path

import numpy as np

import helper  # beside the script: the code folder is first on the import path

model = None
calls = 0


def init():
    global model
    assert os.environ["AZUREML_MODEL_DIR"] == os.environ["MLSPEC_MODEL_DIR"]
    with (Path(os.environ["AZUREML_MODEL_DIR"]) / "model.pkl").open("rb") as handle:
        model = pickle.load(handle)
    if os.environ.get("FAIL_INIT"):
        raise RuntimeError("no model for you")


def run(raw_data):
    global calls
    calls += 1
    data = json.loads(raw_data)
    if data.get("fail"):
        raise ValueError("asked to fail")
    x = np.array(data["data"], dtype=float)
    return {"predictions": model.predict(x), "source": helper.SOURCE, "calls": calls}
'''

SCHEMA = {"type": "object", "required": ["data"],
          "properties": {"data": {"type": "array", "minItems": 1,
                                  "items": {"type": "array", "minItems": 4, "maxItems": 4,
                                            "items": {"type": "number"}}},
                         "fail": {"type": "boolean"}}}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> IrisStore:
    return shared_store(tmp_path_factory)


@pytest.fixture(scope="module")
def code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scoring") / "src"
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent(SCRIPT))
    (folder / "helper.py").write_text("SOURCE = 'helper'\n")
    (folder / "schema.json").write_text(json.dumps(SCHEMA))
    return folder


@pytest.fixture(scope="module")
def server(store: IrisStore, code: Path) -> Iterator[Server]:
    served = start_scoring(store, f"models:/{MODEL}/1", code.parent / "server.log", "--code", str(code),
                           "--scoring-script", "score.py", "--input-schema", str(code / "schema.json"))
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()


def post(server: Server, body: object, path: str = "/invocations") -> httpx.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(server.url + path, content=data, headers={"content-type": "application/json"}, timeout=10)


def test_run_answers_with_what_the_script_returns(server: Server, store: IrisStore) -> None:
    sample = rows(store)
    answer = post(server, {"data": sample.to_numpy().tolist()})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["predictions"] == store.expected(sample) and body["source"] == "helper"
    again = post(server, {"data": sample.to_numpy().tolist()}, "/score")  # Azure ML's route too
    assert again.status_code == 200 and again.json()["calls"] == body["calls"] + 1  # one module: init() once
    health = httpx.get(f"{server.url}/health").json()
    assert health["flavor"] == "script" and len(health["sha256"]) == 64


@pytest.mark.parametrize(("body", "status", "says"), [
    (b"{not json", 422, "not JSON"),
    ({"rows": [[1, 2, 3, 4]]}, 422, "$: 'data' is a required property"),
    ({"data": [[5.1, 3.5, "wide", 0.2]]}, 422, "$.data[0][2]: 'wide' is not of type 'number'"),
    ({"data": [[5.1, 3.5, 1.4]]}, 422, "$.data[0]: [5.1, 3.5, 1.4] is too short: expected at least 4 items"),
    (b"\xff\xfe", 400, "not UTF-8"),
])
def test_a_body_the_schema_refuses_never_reaches_run(server: Server, body: object, status: int, says: str) -> None:
    answer = post(server, body)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]
    assert "asked to fail" not in server.output()


def test_an_exception_in_run_is_a_500_naming_it_with_the_traceback_in_the_log(server: Server) -> None:
    answer = post(server, {"data": [[1, 2, 3, 4]], "fail": True})
    assert answer.status_code == 500
    assert answer.json() == {"error": "run() failed: ValueError: asked to fail"}
    assert "Traceback" in server.output() and 'raise ValueError("asked to fail")' in server.output()
    assert post(server, {"data": [[1, 2, 3, 4]]}).status_code == 200  # the replica serves on


def test_the_openapi_description_gives_the_input_schema(server: Server) -> None:
    described = httpx.get(f"{server.url}/openapi.json").json()
    for path in ("/invocations", "/score"):
        assert described["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"] == SCHEMA


def test_an_init_that_fails_stops_the_replica_with_its_error(store: IrisStore, code: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIL_INIT", "1")
    served = start_scoring(store, f"models:/{MODEL}/1", tmp_path / "failing.log", "--code", str(code),
                           "--scoring-script", "score.py")
    try:
        assert served.wait_exit() == 1
    finally:
        served.stop()
    log = served.output()
    assert "init() failed: RuntimeError: no model for you" in log and "Traceback" in log


def test_the_model_signature_as_input_schema(store: IrisStore, code: Path, tmp_path: Path) -> None:
    served = start_scoring(store, f"models:/{MODEL}/1", tmp_path / "signature.log", "--code", str(code),
                           "--scoring-script", "score.py", "--input-schema", "signature")
    try:
        served.wait_ready()
        sample = rows(store, 2)
        records = sample.drop(columns=[sample.columns[1]]).to_dict(orient="records")
        refused = post(served, {"dataframe_records": records})
        assert refused.status_code == 422 and repr(str(sample.columns[1])) in refused.json()["error"]
        # Passing the signature's check, the body reaches run() as it was sent (this script wants "data").
        passed = post(served, {"dataframe_split": {"columns": list(sample.columns),
                                                   "data": sample.to_numpy().tolist()}})
        assert passed.status_code == 500 and "KeyError: 'data'" in passed.json()["error"]
    finally:
        served.stop()

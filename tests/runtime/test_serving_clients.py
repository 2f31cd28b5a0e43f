"""The scoring server spoken to by third-party clients: MLflow's scoring client and request formats (answered
as MLflow's own scoring server answers them) and Triton's Open Inference Protocol v2 client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from test_serving_support import MODEL, IrisStore, Server, rows, shared_store, start_gateway, start_scoring

pytestmark = pytest.mark.e2e
KEY = "clients-key-0123456789"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> IrisStore:
    return shared_store(tmp_path_factory)


@pytest.fixture(scope="module")
def server(store: IrisStore) -> Iterator[Server]:
    served = start_scoring(store, f"models:/{MODEL}/1", store.root / "clients.log", "--name", "blue")
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def mlflow_server(store: IrisStore) -> Any:
    """MLflow's own scoring server app for the same model files, in process: the reference answers."""
    import mlflow.pyfunc
    from mlflow.pyfunc.scoring_server import init
    from starlette.testclient import TestClient

    return TestClient(init(mlflow.pyfunc.load_model(str(store.folder))))


def port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


# --- MLflow ------------------------------------------------------------------------------------------------------


def test_mlflow_scoring_client_waits_for_ready_and_scores_frames_arrays_and_lists(server: Server,
                                                                                  store: IrisStore) -> None:
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    client = ScoringServerClient("127.0.0.1", port(server))
    client.wait_server_ready(timeout=10)  # polls /ping
    frame = rows(store, 7)
    expected = store.expected(frame)
    for data in (frame, frame.to_numpy(), frame.to_numpy().tolist()):
        answer = client.invoke(data)
        assert answer.get_predictions(predictions_format="ndarray").tolist() == expected
        assert answer.get_predictions()[0].tolist() == expected  # as a DataFrame, MLflow's default


def _serving_inputs(frame: Any) -> dict[str, tuple[str, str]]:
    """Request bodies as MLflow builds them (its input-example conversion and client encoding), and the other
    formats of MLflow's scoring protocol as its documentation shows them."""
    from mlflow.models import convert_input_example_to_serving_input
    from mlflow.utils.proto_json_utils import dump_input_data

    values = frame.to_numpy().tolist()
    as_json = "application/json"
    return {
        "example dataframe": (convert_input_example_to_serving_input(frame), as_json),
        "example ndarray": (convert_input_example_to_serving_input(frame.to_numpy()), as_json),
        "example one row": (convert_input_example_to_serving_input(frame.iloc[:1]), as_json),
        "client dataframe_split": (dump_input_data(frame), as_json),
        "client inputs": (dump_input_data(frame.to_numpy()), as_json),
        "dataframe_records": (json.dumps({"dataframe_records": frame.to_dict(orient="records")}), as_json),
        "dataframe_split orient split": (json.dumps({"dataframe_split": frame.to_dict(orient="split")}), as_json),
        "instances": (json.dumps({"instances": values}), as_json),
        "inputs columns": (json.dumps({"inputs": frame.to_dict(orient="list")}), as_json),
        "csv": (frame.to_csv(index=False), "text/csv"),
        "csv with charset": (frame.to_csv(index=False), "text/csv; charset=utf-8"),
    }


# Rows without column names: MLflow's server refuses them for a model whose signature names its columns; this one
# takes them in the signature's column order when each row has as many values as the model has columns.
POSITIONAL = {"example ndarray", "client inputs", "instances"}


@pytest.mark.parametrize("name", ["example dataframe", "example ndarray", "example one row",
                                  "client dataframe_split", "client inputs", "dataframe_records",
                                  "dataframe_split orient split", "instances", "inputs columns", "csv",
                                  "csv with charset"])
def test_mlflow_request_formats_get_the_answer_mlflow_gives(server: Server, store: IrisStore, mlflow_server: Any,
                                                            name: str) -> None:
    import httpx

    frame = rows(store, 9)
    body, content_type = _serving_inputs(frame)[name]
    reference = mlflow_server.post("/invocations", content=body, headers={"content-type": content_type})
    ours = httpx.post(f"{server.url}/invocations", content=body, headers={"content-type": content_type}, timeout=10)
    assert ours.status_code == 200, ours.text
    assert ours.json()["predictions"] == store.expected(frame.iloc[:1] if name == "example one row" else frame)
    if name in POSITIONAL:
        assert reference.status_code == 400 and "missing inputs" in reference.json()["message"]
    else:
        assert reference.status_code == 200, reference.text
        assert ours.json() == reference.json()


@pytest.mark.parametrize("body, content_type", [
    ("{not json", "application/json"),
    ("{}", "application/json"),
    ('{"dataframe_split": {"columns": ["a"], "data": [[1]]}}', "application/json"),  # none of the model's columns
    ('{"instances": [["x", "y", "z", "w"]]}', "application/json"),
    ('{"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]}', "application/json"),
    ("a,b\n1,2\n", "text/csv"),
    ("<xml/>", "application/xml"),
])
def test_requests_mlflow_refuses_are_client_errors_here_too(server: Server, mlflow_server: Any, body: str,
                                                            content_type: str) -> None:
    import httpx

    reference = mlflow_server.post("/invocations", content=body, headers={"content-type": content_type})
    ours = httpx.post(f"{server.url}/invocations", content=body, headers={"content-type": content_type}, timeout=10)
    assert 400 <= reference.status_code < 500, reference.text
    assert 400 <= ours.status_code < 500, ours.text
    assert ours.json()["error"]  # a message in words, never a traceback
    assert "Traceback" not in ours.text


# --- Open Inference Protocol v2, with Triton's client ------------------------------------------------------------


@pytest.fixture(scope="module")
def triton(server: Server) -> Iterator[Any]:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{port(server)}", network_timeout=10)
    try:
        yield client
    finally:
        client.close()


def test_triton_client_sees_a_live_ready_server_and_model(triton: Any) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready(MODEL)
    assert triton.is_model_ready(MODEL, "1")
    assert triton.is_model_ready("blue")  # the deployment's name
    assert not triton.is_model_ready("no-such-model")
    assert not triton.is_model_ready(MODEL, "7")
    assert triton.get_server_metadata()["name"] == "mlspec-serving"


def test_triton_client_reads_model_metadata(triton: Any, store: IrisStore) -> None:
    for metadata in (triton.get_model_metadata(MODEL), triton.get_model_metadata(MODEL, "1")):
        assert metadata["name"] == MODEL and metadata["versions"] == ["1"]
        assert [i["name"] for i in metadata["inputs"]] == list(store.features.columns)
        assert {i["datatype"] for i in metadata["inputs"]} == {"FP64"}
        assert metadata["outputs"][0]["datatype"] == "INT64"


@pytest.mark.parametrize("datatype, binary", [("FP64", False), ("FP64", True), ("FP32", False), ("FP32", True)])
def test_triton_client_infers_one_tensor(triton: Any, store: IrisStore, datatype: str, binary: bool) -> None:
    import tritonclient.http as httpclient

    frame = rows(store, 6)
    tensor = frame.to_numpy().astype(np.float64 if datatype == "FP64" else np.float32)
    given = httpclient.InferInput("input-0", list(tensor.shape), datatype)
    given.set_data_from_numpy(tensor, binary_data=binary)
    result = triton.infer(MODEL, [given], request_id="req-1")  # no outputs named: Triton asks for binary ones
    assert result.as_numpy("predict").tolist() == store.model.predict(tensor.astype(np.float64)).tolist()
    response = result.get_response()
    assert response["model_name"] == MODEL and response["model_version"] == "1" and response["id"] == "req-1"


@pytest.mark.parametrize("binary", [False, True])
def test_triton_client_infers_named_columns_in_any_order(triton: Any, store: IrisStore, binary: bool) -> None:
    import tritonclient.http as httpclient

    frame = rows(store, 5)
    inputs = []
    for column in reversed(frame.columns):  # by name, so the order they are sent in does not matter
        values = frame[[column]].to_numpy()  # [N, 1]
        given = httpclient.InferInput(column, list(values.shape), "FP64")
        given.set_data_from_numpy(values, binary_data=binary)
        inputs.append(given)
    result = triton.infer(MODEL, inputs, model_version="1",
                          outputs=[httpclient.InferRequestedOutput("predict", binary_data=False)])
    assert result.as_numpy("predict").tolist() == store.expected(frame)


def test_triton_client_gets_the_servers_error_message(triton: Any) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    given = httpclient.InferInput("input-0", [1, 3], "FP64")
    given.set_data_from_numpy(np.zeros((1, 3)), binary_data=True)
    with pytest.raises(InferenceServerException, match="4 values"):
        triton.infer(MODEL, [given])
    with pytest.raises(InferenceServerException, match="no model 'nope'"):
        triton.infer("nope", [given])


@pytest.fixture(scope="module")
def gateway(server: Server, store: IrisStore) -> Iterator[Server]:
    served = start_gateway(server, KEY, store.root / "clients-gateway.json")
    try:
        served.wait_ready(30)
        yield served
    finally:
        served.stop()


def test_triton_client_through_the_gateway_with_a_key(gateway: Server, store: IrisStore) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(url=gateway.url.removeprefix("http://"), network_timeout=10)
    key = {"Authorization": f"Bearer {KEY}"}
    try:
        assert client.is_model_ready(MODEL, headers=key)
        assert not client.is_model_ready(MODEL)  # 401 without the key
        frame = rows(store, 4)
        given = httpclient.InferInput("input-0", list(frame.shape), "FP64")
        given.set_data_from_numpy(frame.to_numpy(), binary_data=True)  # its length header passes through
        result = client.infer(MODEL, [given], headers={**key, "x-mlspec-deployment": "blue"})
        assert result.as_numpy("predict").tolist() == store.expected(frame)
        with pytest.raises(InferenceServerException, match="valid key"):
            client.infer(MODEL, [given])
    finally:
        client.close()

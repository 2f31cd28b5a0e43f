"""Routing by model through a real gateway in front of two real scoring servers that serve two different models,
spoken to with Triton's client: every call reaches the deployment serving the model it names."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from test_serving_support import (
    MODEL,
    IrisStore,
    Server,
    copy_model,
    register,
    rows,
    shared_store,
    start,
    start_scoring,
)

from mlspec.runtime.keys import key_hash

pytestmark = pytest.mark.e2e
KEY = "model-routing-key-0123456789"


def auth() -> dict[str, str]:
    """Headers with the key, new for each call: Triton's client adds its own headers to the dict it is given."""
    return {"Authorization": f"Bearer {KEY}"}

OTHER = "iris-other"  # a second registered model, served by deployment 'green'
GREEN_LIMIT = 8192  # green's replicas take no larger body; blue's take the default 16 MiB
CALLS = 100


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> IrisStore:
    return shared_store(tmp_path_factory)


@pytest.fixture(scope="module")
def endpoint(store: IrisStore) -> Iterator[Server]:
    """Deployment blue serves iris-clf version 1 with 90% of the traffic, green serves iris-other with 10%."""
    from mlspec.runtime.serving.integrity import model_digest

    folder = copy_model(store, OTHER)
    other_version = register(store.tracking_uri, folder, None, {"mlspec.sha256": model_digest(folder)}, name=OTHER)
    blue = start_scoring(store, f"models:/{MODEL}/1", store.root / "routing-blue.log", "--name", "blue")
    green = start_scoring(store, f"models:/{OTHER}/{other_version}", store.root / "routing-green.log", "--name",
                          "green", "--max-body-size", str(GREEN_LIMIT))
    servers = [blue, green]
    try:
        for server in (blue, green):
            server.wait_ready()
        probe = {"initial_delay": 0, "period": 1, "timeout": 2, "failure_threshold": 3, "success_threshold": 1}
        config = store.root / "routing-gateway.json"
        config.write_text(json.dumps({
            "endpoint": "iris", "auth": "key", "key_hashes": [key_hash(KEY)],
            "deployments": {
                "blue": {"weight": 90, "replicas": [blue.url], "readiness": probe,
                         "model": {"name": MODEL, "version": "1"}, "max_body_size": 16 * 2**20},
                "green": {"weight": 10, "replicas": [green.url], "readiness": probe,
                          "model": {"name": OTHER, "version": other_version}, "max_body_size": GREEN_LIMIT}}}))
        gateway = start("mlspec.runtime.gateway", ["--config", str(config)], store.root / "routing-gateway.log")
        servers.append(gateway)
        gateway.wait_ready(30)
        yield gateway
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def triton(endpoint: Server) -> Iterator[Any]:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=endpoint.url.removeprefix("http://"), network_timeout=10)
    try:
        yield client
    finally:
        client.close()


def _input(frame: Any) -> Any:
    import tritonclient.http as httpclient

    given = httpclient.InferInput("input-0", list(frame.shape), "FP64")
    given.set_data_from_numpy(frame.to_numpy(), binary_data=True)
    return given


def test_every_triton_call_reaches_the_deployment_serving_its_model(triton: Any, store: IrisStore) -> None:
    from tritonclient.utils import InferenceServerException

    frame = rows(store, 4)
    expected = store.expected(frame)
    failed: list[str] = []
    served = {MODEL: 0, OTHER: 0}
    for call in range(CALLS):
        model = MODEL if call % 2 == 0 else OTHER  # by weight alone, 10% of iris-clf's calls would reach green
        try:
            result = triton.infer(model, [_input(frame)], headers=auth())
        except InferenceServerException as error:
            failed.append(f"{model}: {error}")
            continue
        assert result.get_response()["model_name"] == model
        assert result.as_numpy("predict").tolist() == expected  # the same iris model under two names
        served[model] += 1
    assert not failed, f"{len(failed)} of {CALLS} calls failed, e.g. {failed[:3]}"
    assert served == {MODEL: CALLS // 2, OTHER: CALLS // 2}


def test_readiness_metadata_and_the_repository_index_per_model(triton: Any) -> None:
    assert triton.is_model_ready(MODEL, headers=auth()) and triton.is_model_ready(OTHER, headers=auth())
    assert triton.is_model_ready(MODEL, "1", headers=auth()) and triton.is_model_ready("green", headers=auth())
    assert not triton.is_model_ready("nope", headers=auth()) and not triton.is_model_ready(MODEL, "7", headers=auth())
    assert triton.get_model_metadata(MODEL, headers=auth())["name"] == MODEL
    assert triton.get_model_metadata(MODEL, "1", headers=auth())["versions"] == ["1"]
    index = triton.get_model_repository_index(headers=auth())
    assert [(entry["name"], entry["state"]) for entry in index] == [(MODEL, "READY"), (OTHER, "READY")]
    assert index[0]["version"] == "1"
    other = triton.get_model_metadata(OTHER, index[1]["version"], headers=auth())  # forwarded to green's replica
    assert other["name"] == OTHER and other["versions"] == [index[1]["version"]]


def test_an_unknown_model_is_404_listing_the_models(endpoint: Server, store: IrisStore) -> None:
    answer = httpx.post(f"{endpoint.url}/v2/models/nope/infer", headers=auth(), content=b"{}", timeout=10)
    assert answer.status_code == 404
    assert "no model 'nope'" in answer.json()["error"] and f"'{MODEL} version 1'" in answer.json()["error"]
    # /invocations keeps the weighted split; a pin still wins
    pinned = httpx.post(f"{endpoint.url}/invocations", headers={**auth(), "azureml-model-deployment": "green"},
                        json={"instances": rows(store, 2).to_numpy().tolist()}, timeout=10)
    assert pinned.status_code == 200 and pinned.headers["x-mlspec-deployment"] == "green"


def test_a_body_over_its_deployments_limit_is_413_before_it_is_sent(endpoint: Server) -> None:
    """Only the headers go out: the gateway answers from the declared length, without waiting for the body."""
    host, port = endpoint.url.removeprefix("http://").split(":")
    for path, status in ((f"/v2/models/{OTHER}/infer", 413), ("/invocations", None)):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(f"POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n"
                         f"content-type: application/json\r\ncontent-length: {GREEN_LIMIT + 1}\r\n\r\n".encode())
            if status is None:  # blue may take it: the gateway waits for the body
                sock.settimeout(0.5)
                with pytest.raises(TimeoutError):
                    sock.recv(1)
                continue
            answer = b""
            while chunk := sock.recv(65536):  # the gateway closes the connection: the body was never read
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 413 ") and b"deployment 'green'" in answer
    large = np.zeros((GREEN_LIMIT // 8, 4)).tolist()
    body = json.dumps({"instances": large}).encode()
    assert len(body) > GREEN_LIMIT
    pinned = httpx.post(f"{endpoint.url}/invocations", headers={**auth(), "x-mlspec-deployment": "green"},
                        content=body, timeout=10)
    assert pinned.status_code == 413 and "deployment 'green'" in pinned.json()["error"]
    to_blue = httpx.post(f"{endpoint.url}/invocations", headers={**auth(), "x-mlspec-deployment": "blue"},
                         content=body, timeout=10)
    assert to_blue.status_code == 200 and len(to_blue.json()["predictions"]) == len(large)

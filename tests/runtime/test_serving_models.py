"""The scoring server as a real process with other models: integrity refusals, a slow pyfunc, a TorchScript net."""

from __future__ import annotations

import json
import signal
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_serving_support import (
    MODEL,
    IrisStore,
    copy_model,
    fluent_tracking_uri,
    register,
    shared_store,
    start_scoring,
)

pytestmark = pytest.mark.e2e
ROW = "[5.1, 3.5, 1.4, 0.2]"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> IrisStore:
    return shared_store(tmp_path_factory)


def post(url: str, path: str, body: str) -> httpx.Response:
    return httpx.post(url + path, content=body.encode(), headers={"content-type": "application/json"}, timeout=10)


def test_tampered_artifact_is_refused_before_loading(store: IrisStore, tmp_path: Path) -> None:
    from mlspec.runtime.serving.integrity import model_digest

    folder = copy_model(store, "tampered")
    version = register(store.tracking_uri, folder, None, {"mlspec.sha256": model_digest(folder)})
    pickled = folder / "model.pkl"
    data = bytearray(pickled.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte changed after registration
    pickled.write_bytes(bytes(data))
    refused = start_scoring(store, f"models:/{MODEL}/{version}", tmp_path / "tampered.log")
    try:
        assert refused.wait_exit() == 1
    finally:
        refused.stop()
    assert "digest" in refused.output() and "does not match" in refused.output()


def test_missing_digest_is_refused_unless_allowed(store: IrisStore, tmp_path: Path) -> None:
    version = register(store.tracking_uri, copy_model(store, "untagged"), None, {})
    refused = start_scoring(store, f"models:/{MODEL}/{version}", tmp_path / "untagged.log")
    try:
        assert refused.wait_exit() == 1
    finally:
        refused.stop()
    assert "mlspec.sha256" in refused.output() and "--allow-unverified" in refused.output()
    allowed = start_scoring(store, f"models:/{MODEL}/{version}", tmp_path / "allowed.log", "--allow-unverified")
    try:
        allowed.wait_ready()
        answer = post(allowed.url, "/invocations", f'{{"instances": [{ROW}]}}')
        assert answer.json() == {"predictions": [0]}
    finally:
        allowed.stop()


SLOW_MODEL = textwrap.dedent('''
    import time

    import mlflow.pyfunc
    from mlflow.models import set_model


    class Slow(mlflow.pyfunc.PythonModel):
        """Sleeps as many seconds as the first value says."""

        def predict(self, context, model_input, params=None):
            delay = float(model_input.iloc[0, 0])
            time.sleep(delay)
            return [delay] * len(model_input)


    set_model(Slow())
''')


@pytest.fixture(scope="module")
def slow_model(store: IrisStore, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The slow pyfunc, registered with its digest: its models:/ URI."""
    import mlflow
    import mlflow.pyfunc

    from mlspec.runtime.serving.integrity import model_digest

    code = tmp_path_factory.mktemp("slow") / "slow_model.py"
    code.write_text(SLOW_MODEL)
    with fluent_tracking_uri(store.tracking_uri), mlflow.start_run(
            experiment_id=mlflow.get_experiment_by_name("serving-tests").experiment_id) as run:
        info = mlflow.pyfunc.log_model(name="slow", python_model=str(code), pip_requirements=["mlflow"])
    folder = Path(mlflow.MlflowClient(store.tracking_uri).get_logged_model(info.model_id).artifact_location
                  .removeprefix("file://"))
    version = register(store.tracking_uri, info.model_uri, run.info.run_id, {"mlspec.sha256": model_digest(folder)},
                       name="slow")
    return f"models:/slow/{version}"


def test_a_request_sent_while_the_model_loads_waits_for_it(store: IrisStore, tmp_path: Path) -> None:
    server = start_scoring(store, f"models:/{MODEL}/1", tmp_path / "early.log", "--request-timeout", "60")
    try:
        deadline = time.monotonic() + 30
        while True:  # the port answers at once, before the model is loaded
            try:
                first = httpx.get(f"{server.url}/health", timeout=2).status_code
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, server.output()
                time.sleep(0.05)
        answer = httpx.post(f"{server.url}/invocations", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}, timeout=60)
        assert first == 503  # it was still loading when the request was sent
        assert answer.status_code == 200 and answer.json() == {"predictions": [0]}
    finally:
        server.stop()


def test_sigterm_lets_requests_in_flight_finish_in_every_worker(store: IrisStore, slow_model: str,
                                                                tmp_path: Path) -> None:
    server = start_scoring(store, slow_model, tmp_path / "drain.log", "--workers", "2")
    try:
        server.wait_ready()
        answers: list[httpx.Response] = []
        threads = [threading.Thread(target=lambda: answers.append(post(server.url, "/invocations",
                                                                       '{"instances": [[1.0]]}')))
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(0.4)  # both requests are being scored
        server.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(10)
        assert server.process.wait(15) == 0
        assert [(a.status_code, a.json()) for a in answers] == [(200, {"predictions": [1.0]})] * 2
    finally:
        server.stop()


def test_slow_pyfunc_predict_is_504_while_health_keeps_answering(store: IrisStore, slow_model: str,
                                                                 tmp_path: Path) -> None:
    server = start_scoring(store, slow_model, tmp_path / "slow.log", "--request-timeout", "0.5")
    try:
        server.wait_ready()
        assert httpx.get(f"{server.url}/health").json()["flavor"] == "pyfunc"
        started = time.monotonic()
        slow: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: slow.update(answer=post(server.url, "/invocations",
                                                                          '{"instances": [[1.5]]}')))
        thread.start()
        time.sleep(0.1)
        assert httpx.get(f"{server.url}/health", timeout=0.3).status_code == 200  # the loop is not blocked
        thread.join()
        assert slow["answer"].status_code == 504 and "timeout" in slow["answer"].json()["error"]
        assert time.monotonic() - started < 1.4  # answered at the timeout, not when the predict finished
        time.sleep(1.5)
        answer = post(server.url, "/invocations", '{"instances": [[0.0]]}')
        assert answer.status_code == 200 and answer.json() == {"predictions": [0.0]}
    finally:
        server.stop()


def test_torchscript_model_is_served_through_its_tensor_signature(store: IrisStore, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    import mlflow
    import mlflow.pytorch
    import numpy as np
    from mlflow.models import infer_signature

    from mlspec.runtime.serving.integrity import model_digest

    class TinyNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.linear(x), dim=1)

    torch.manual_seed(0)
    net = torch.jit.script(TinyNet().eval())
    x = np.array(store.features.to_numpy(dtype=np.float32)[:3])  # writable, as torch.from_numpy wants
    expected = net(torch.from_numpy(x)).detach().numpy()
    with fluent_tracking_uri(store.tracking_uri), mlflow.start_run(
            experiment_id=mlflow.get_experiment_by_name("serving-tests").experiment_id) as run:
        info = mlflow.pytorch.log_model(net, name="net", signature=infer_signature(x, expected),
                                        serialization_format="pickle", pip_requirements=["torch"])
    folder = Path(mlflow.MlflowClient(store.tracking_uri).get_logged_model(info.model_id).artifact_location
                  .removeprefix("file://"))
    version = register(store.tracking_uri, info.model_uri, run.info.run_id, {"mlspec.sha256": model_digest(folder)},
                       name="tiny-net")
    server = start_scoring(store, f"models:/tiny-net/{version}", tmp_path / "torch.log", "--device", "cpu")
    try:
        server.wait_ready()
        assert httpx.get(f"{server.url}/health").json()["flavor"] == "torch"
        answer = post(server.url, "/invocations", json.dumps({"inputs": x.tolist()}))
        assert answer.status_code == 200, answer.text
        assert np.allclose(answer.json()["predictions"], expected, atol=1e-6)
        body = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32", "data": x.ravel().tolist()}]}
        output = post(server.url, "/v2/models/tiny-net/infer", json.dumps(body)).json()["outputs"][0]
        assert output["shape"] == [3, 3] and output["datatype"] == "FP32"
        assert np.allclose(np.reshape(output["data"], (3, 3)), expected, atol=1e-6)
        wrong = post(server.url, "/invocations", json.dumps({"inputs": [[1.0, 2.0, 3.0]]}))
        assert wrong.status_code == 422 and "shape" in wrong.json()["error"]
    finally:
        server.stop()


def test_v2_metadata_states_the_datatype_infer_returns_not_the_signatures(store: IrisStore, tmp_path: Path) -> None:
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from mlspec.runtime.serving.integrity import model_digest

    features = store.features.iloc[:3]
    claimed = store.model.predict(features).astype(float)  # the signature says double; predict returns int64
    with fluent_tracking_uri(store.tracking_uri), mlflow.start_run(
            experiment_id=mlflow.get_experiment_by_name("serving-tests").experiment_id) as run:
        info = mlflow.sklearn.log_model(store.model, name="clf", signature=infer_signature(features, claimed),
                                        input_example=features, pip_requirements=["scikit-learn"])
    folder = Path(mlflow.MlflowClient(store.tracking_uri).get_logged_model(info.model_id).artifact_location
                  .removeprefix("file://"))
    version = register(store.tracking_uri, info.model_uri, run.info.run_id, {"mlspec.sha256": model_digest(folder)},
                       name="mislabelled")
    server = start_scoring(store, f"models:/mislabelled/{version}", tmp_path / "mislabelled.log")
    try:
        server.wait_ready()
        body = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64",
                            "data": features.to_numpy().ravel().tolist()}]}
        outputs = post(server.url, "/v2/models/mislabelled/infer", json.dumps(body)).json()["outputs"]
        described = httpx.get(f"{server.url}/v2/models/mislabelled").json()["outputs"]
        assert [(o["name"], o["datatype"]) for o in described] == [(o["name"], o["datatype"]) for o in outputs]
        assert outputs[0]["datatype"] == "INT64"
    finally:
        server.stop()

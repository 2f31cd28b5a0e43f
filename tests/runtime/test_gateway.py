"""The gateway as a real process in front of two real scoring servers (blue and green): auth, routing, and new
configs through its control channel."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_serving_support import (
    MODEL,
    IrisStore,
    Server,
    free_port,
    metric,
    shared_store,
    start,
    start_scoring,
)

pytestmark = pytest.mark.e2e
PRIMARY, SECONDARY = "primary-key-0123456789", "secondary-key-9876543210"
BODY = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> IrisStore:
    return shared_store(tmp_path_factory)


@pytest.fixture(scope="module")
def replicas(store: IrisStore) -> Iterator[dict[str, Server]]:
    servers = {name: start_scoring(store, f"models:/{MODEL}/1", store.root / f"{name}.log", "--name", name)
               for name in ("blue", "green")}
    try:
        for server in servers.values():
            server.wait_ready()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


class Gateway:
    def __init__(self, server: Server, config: Path, control: Path) -> None:
        self.server, self.config, self.control, self.url = server, config, control, server.url

    def put(self, config: dict[str, Any] | str) -> httpx.Response:
        """PUT a config on the control socket, as the engine does."""
        body = config if isinstance(config, str) else json.dumps(config)
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(self.control)), timeout=10) as client:
            return client.put("http://gateway/config", content=body)

    def write(self, config: dict[str, Any]) -> None:
        answer = self.put(config)
        assert answer.status_code == 200, answer.text

    def post(self, key: str | None = PRIMARY, headers: dict[str, str] | None = None,
             path: str = "/invocations") -> httpx.Response:
        sent = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.post(self.url + path, json=BODY, headers={**sent, **(headers or {})}, timeout=10)

    def deployments(self, count: int, **kwargs: Any) -> Counter[str]:
        answers = [self.post(**kwargs) for _ in range(count)]
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
        return Counter(a.headers["x-mlspec-deployment"] for a in answers)


def config(replicas: dict[str, Server], blue: int = 100, green: int = 0, **extra: Any) -> dict[str, Any]:
    return {"endpoint": "iris", "auth": "key", "key_hashes": [digest(PRIMARY), digest(SECONDARY)],
            "deployments": {"blue": {"weight": blue, "replicas": [replicas["blue"].url]},
                            "green": {"weight": green, "replicas": [replicas["green"].url]}}, **extra}


@pytest.fixture(scope="module")
def gateway(replicas: dict[str, Server], store: IrisStore) -> Iterator[Gateway]:
    path = store.root / "gateway.json"
    path.write_text(json.dumps(config(replicas)))
    folder = store.root / "control"
    folder.mkdir(mode=0o700)
    control = folder / "gateway.sock"
    served = start("mlspec.runtime.gateway", ["--config", str(path), "--control", str(control)],
                   store.root / "gateway.log")
    front = Gateway(served, path, control)
    try:
        served.wait_ready(30)
        yield front
    finally:
        served.stop()


@pytest.fixture
def reset(gateway: Gateway, replicas: dict[str, Server]) -> Iterator[None]:
    yield
    gateway.write(config(replicas))
    assert gateway.post().status_code == 200 and gateway.deployments(4) == Counter(blue=4)


def test_health_needs_no_key_and_unknown_paths_are_404(gateway: Gateway) -> None:
    health = httpx.get(f"{gateway.url}/health").json()
    assert health["status"] == "ok" and health["deployments"]["blue"] == {"weight": 100, "replicas": 1, "down": 0,
                                                                      "unready": 0, "ready": 1, "state": "ready"}
    assert httpx.get(f"{gateway.url}/nope").status_code == 404
    assert httpx.post(f"{gateway.url}/admin", headers={"authorization": f"Bearer {PRIMARY}"}).status_code == 404


def test_a_valid_key_is_required(gateway: Gateway) -> None:
    assert gateway.post(key=None).status_code == 401
    assert gateway.post(key="wrong").status_code == 401
    assert gateway.post(key=None, headers={"api-key": "wrong"}).status_code == 401
    assert "www-authenticate" in gateway.post(key=None).headers
    answer = gateway.post(PRIMARY)
    assert answer.status_code == 200 and answer.json() == {"predictions": [0, 2]}
    assert gateway.post(key=None, headers={"api-key": SECONDARY}).status_code == 200
    assert gateway.post(SECONDARY, path="/score").json() == {"predictions": [0, 2]}  # Azure ML's path
    assert httpx.get(f"{gateway.url}/v2/models/{MODEL}", headers={"api-key": PRIMARY}).json()["name"] == MODEL


def test_weights_100_to_0_send_everything_to_blue(gateway: Gateway) -> None:
    assert gateway.deployments(30) == Counter(blue=30)


def test_pin_headers_reach_the_named_deployment(gateway: Gateway) -> None:
    assert gateway.deployments(5, headers={"azureml-model-deployment": "green"}) == Counter(green=5)
    assert gateway.deployments(5, headers={"x-mlspec-deployment": "green"}) == Counter(green=5)
    unknown = gateway.post(headers={"x-mlspec-deployment": "purple"})
    assert unknown.status_code == 404 and "blue, green" in unknown.json()["error"]


@pytest.mark.usefixtures("reset")
def test_key_rotation_and_weight_shift_apply_without_restart(gateway: Gateway, replicas: dict[str, Server]) -> None:
    pid = gateway.server.process.pid
    rotated = "rotated-primary-key-555"
    gateway.write({**config(replicas, blue=0, green=100), "key_hashes": [digest(rotated), digest(SECONDARY)]})
    assert gateway.post(PRIMARY).status_code == 401
    assert gateway.post(rotated).status_code == 200 and gateway.post(SECONDARY).status_code == 200
    assert gateway.deployments(20, key=rotated) == Counter(green=20)
    # Plain keys are accepted too (hashed when read); a split sends some to each.
    gateway.write({**config(replicas, blue=50, green=50), "key_hashes": [], "keys": ["plain-key"]})
    assert gateway.post("plain-key").status_code == 200
    split = gateway.deployments(60, key="plain-key")
    assert split["blue"] > 5 and split["green"] > 5
    assert gateway.server.process.pid == pid and gateway.server.process.poll() is None


@pytest.mark.usefixtures("reset")
def test_an_invalid_config_is_refused_and_the_last_good_one_kept(gateway: Gateway) -> None:
    before = httpx.get(f"{gateway.url}/health").json()["config"]
    refused = gateway.put('{"deployments": {"blue": {"weight": -1}}}')
    assert refused.status_code == 400 and "weight must be a non-negative integer" in refused.json()["error"]
    assert gateway.put("{not json").status_code == 400
    assert httpx.get(f"{gateway.url}/health").json()["config"] == before
    assert gateway.deployments(4) == Counter(blue=4)
    # The file is read again on SIGHUP only; an invalid one there is reported and skipped too.
    gateway.config.write_text('{"deployments": {"blue": {"weight": -1}}}')
    gateway.server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "keeping the previous configuration" not in gateway.server.output():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert gateway.post().status_code == 200


@pytest.mark.usefixtures("reset")
def test_the_acknowledgement_comes_once_the_new_routing_is_in_use(gateway: Gateway,
                                                                  replicas: dict[str, Server]) -> None:
    for blue, green in ((0, 100), (100, 0), (0, 100)):
        answer = gateway.put(config(replicas, blue=blue, green=green))
        assert answer.status_code == 200
        assert answer.json()["config"] == httpx.get(f"{gateway.url}/health").json()["config"]
        expected = Counter(green=8) if green else Counter(blue=8)
        assert gateway.deployments(8) == expected  # at once: no request after the answer goes by the old routing
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(gateway.control)), timeout=10) as client:
        stats = client.get("http://gateway/stats").json()
    assert stats["deployments"]["green"]["requests_total"] >= 16
    assert stats["deployments"]["green"] | {"requests_total": 0} == {
        "in_flight": 0, "queued": 0, "held": 0, "requests_total": 0, "replicas": 1, "ready": 1}
    assert oct(os.stat(gateway.control).st_mode & 0o777) == "0o600"


@pytest.mark.usefixtures("reset")
def test_mirror_sends_copies_and_discards_the_answers(gateway: Gateway, replicas: dict[str, Server]) -> None:
    def green_invocations() -> float:
        text = httpx.get(f"{replicas['green'].url}/metrics").text
        return metric(text, "mlspec_requests_total", route="invocations", status="200")

    gateway.write(config(replicas, mirror={"green": 100}))
    assert httpx.get(f"{gateway.url}/health").json()["mirror"] == {"green": 100}
    before = green_invocations()
    assert gateway.deployments(20) == Counter(blue=20)  # every answer still comes from blue
    deadline = time.monotonic() + 5
    while green_invocations() < before + 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert green_invocations() == before + 20


@pytest.mark.usefixtures("reset")
def test_no_reachable_replica_is_502_and_a_dead_one_is_skipped(gateway: Gateway, replicas: dict[str, Server]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    gateway.write({**config(replicas), "deployments": {
        "blue": {"weight": 100, "replicas": [dead, replicas["blue"].url]},
        "red": {"weight": 0, "replicas": [dead]}}})
    assert "red" in httpx.get(f"{gateway.url}/health").json()["deployments"]
    assert gateway.deployments(10) == Counter(blue=10)  # the dead replica is retried around, then skipped
    assert httpx.get(f"{gateway.url}/health").json()["deployments"]["blue"]["down"] == 1
    failed = gateway.post(headers={"x-mlspec-deployment": "red"})
    assert failed.status_code == 502 and "no replica of deployment 'red'" in failed.json()["error"]


@pytest.mark.usefixtures("reset")
def test_killing_a_replica_leaves_the_other_answering(gateway: Gateway, replicas: dict[str, Server]) -> None:
    # Last in the module: green is killed for good.
    both = [replicas["blue"].url, replicas["green"].url]
    gateway.write({**config(replicas), "deployments": {"blue": {"weight": 100, "replicas": both}}})
    assert httpx.get(f"{gateway.url}/health").json()["deployments"]["blue"]["replicas"] == 2
    assert gateway.deployments(10) == Counter(blue=10)
    replicas["green"].process.kill()
    replicas["green"].process.wait(10)
    assert gateway.deployments(20) == Counter(blue=20)  # no request fails: each is retried on the live replica
    replicas["green"] = replicas["blue"]  # so the reset fixture's config still points somewhere alive


def test_an_invalid_config_at_start_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps({"auth": "password", "deployments": {"blue": {"replicas": []}}}))
    refused = start("mlspec.runtime.gateway", ["--config", str(path)], tmp_path / "gateway.log")
    assert refused.wait_exit(30) == 1
    assert "auth must be 'key' or 'none'" in refused.output()

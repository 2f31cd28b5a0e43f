"""A replica started with an internal token answers only requests that carry it (health probes aside); the gateway
adds it to what it forwards and never passes on one a caller offers."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_serving_support import MODEL, IrisStore, Server, rows, shared_store, start, start_scoring

from mlspec.runtime.internal_token import ENV, HEADER
from mlspec.runtime.keys import key_hash

TOKEN = secrets.token_urlsafe(32)
KEY = "a-key-for-the-internal-token-tests"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> IrisStore:
    return shared_store(tmp_path_factory)


@pytest.fixture(scope="module")
def servers(store: IrisStore) -> Iterator[tuple[Server, Server]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV, TOKEN)  # the variable, as the containers get it: never on a command line
        replica = start_scoring(store, f"models:/{MODEL}/1", store.root / "token-replica.log",
                                "--internal-token-env", ENV)
        config = store.root / "token-gateway.json"
        config.write_text(json.dumps({"endpoint": "iris", "auth": "key", "key_hashes": [key_hash(KEY)],
                                      "deployments": {"blue": {"weight": 100, "replicas": [replica.url]}}}))
        gateway = start("mlspec.runtime.gateway", ["--config", str(config), "--internal-token-env", ENV],
                        config.with_suffix(".log"))
    try:
        replica.wait_ready()
        gateway.wait_ready()
        yield replica, gateway
    finally:
        gateway.stop()
        replica.stop()


def body(store: IrisStore) -> dict[str, object]:
    return {"dataframe_split": json.loads(rows(store).to_json(orient="split", index=False))}


def test_a_replica_refuses_requests_without_the_token(store: IrisStore, servers: tuple[Server, Server]) -> None:
    replica, _ = servers
    plain = httpx.post(f"{replica.url}/invocations", json=body(store), timeout=10)
    assert plain.status_code == 403 and "gateway" in plain.json()["error"]
    wrong = httpx.post(f"{replica.url}/invocations", json=body(store), timeout=10,
                       headers={HEADER.decode(): "x" * len(TOKEN)})
    assert wrong.status_code == 403
    assert httpx.get(f"{replica.url}/v2/models/blue", timeout=10).status_code == 403
    assert httpx.get(f"{replica.url}/metrics", timeout=10).status_code == 403
    for probe in ("/health", "/v2/health/ready", "/v2/health/live"):  # the orchestrator's probes carry no token
        assert httpx.get(f"{replica.url}{probe}", timeout=10).status_code == 200
    right = httpx.post(f"{replica.url}/invocations", json=body(store), timeout=10, headers={HEADER.decode(): TOKEN})
    assert right.status_code == 200
    assert right.json()["predictions"] == store.expected(rows(store))


def test_the_gateway_adds_the_token_and_drops_a_callers(store: IrisStore, servers: tuple[Server, Server]) -> None:
    _, gateway = servers
    answer = httpx.post(f"{gateway.url}/invocations", json=body(store), timeout=10,
                        headers={"Authorization": f"Bearer {KEY}", HEADER.decode(): "forged"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == store.expected(rows(store))


@pytest.mark.parametrize("module", ["mlspec.runtime.serving", "mlspec.runtime.gateway"])
def test_an_unset_token_variable_stops_the_server(store: IrisStore, tmp_path: Path, module: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLSPEC_TEST_NO_TOKEN", raising=False)
    config = tmp_path / "gateway.json"
    config.write_text(json.dumps({"endpoint": "e", "auth": "none", "deployments": {"blue": {"weight": 100,
                                                                                              "replicas": []}}}))
    args = ["--model-uri", f"models:/{MODEL}/1", "--tracking-uri", store.tracking_uri] \
        if module.endswith("serving") else ["--config", str(config)]
    server = start(module, [*args, "--internal-token-env", "MLSPEC_TEST_NO_TOKEN"], tmp_path / "server.log")
    assert server.wait_exit(60) != 0
    assert "$MLSPEC_TEST_NO_TOKEN" in server.output() and "unset" in server.output()

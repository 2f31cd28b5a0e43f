"""The commands an endpoint's pods declare, run as processes: the replica serves its model with the internal token
from its Secret's file, and the gateway routes by its ConfigMap's config with the keys from its key file."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlspec.backends.pulumi.kubernetes.context import Context
from mlspec.backends.pulumi.kubernetes.endpoint import endpoint_objects
from mlspec.backends.pulumi.model import build_program
from mlspec.graph import load_graph
from mlspec.runtime.internal_token import ENV, HEADER
from mlspec.runtime.keys import key_hash
from tests.runtime.test_serving_support import IrisStore, Server, free_port, make_iris_store, rows

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
KEY = "a-key-the-gateway-knows-by-its-digest"
TOKEN = secrets.token_urlsafe(32)


def _container(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    obj = next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)
    (container,) = obj["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def _run(command: list[str], swaps: dict[str, str], log: Path) -> Server:
    """The container's command on this machine: its interpreter, and the given flags' values swapped (addresses
    and paths that exist only in a pod)."""
    args = list(command[1:])
    for flag, value in swaps.items():
        args[args.index(flag) + 1] = value
    port = free_port()
    args[args.index("--port") + 1], args[args.index("--host") + 1] = str(port), "127.0.0.1"
    env = {**{k: v for k, v in os.environ.items() if k != ENV},  # the token comes from its file alone
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with log.open("wb") as handle:
        process = subprocess.Popen([sys.executable, *args], stdout=handle, stderr=subprocess.STDOUT, env=env,
                                   cwd=log.parent)
    return Server(process, f"http://127.0.0.1:{port}", log)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> IrisStore:
    return make_iris_store(tmp_path_factory.mktemp("store"))  # its own: iris-clf@latest is its version 1


@pytest.fixture(scope="module")
def endpoint(store: IrisStore) -> Iterator[tuple[Server, Server]]:
    program = build_program(load_graph([ROOT / "examples" / "iris"]), store.root / "out")
    ctx = Context.of(program.project, tracking_uri=store.tracking_uri)
    objects = endpoint_objects(program.endpoints[0], ctx, environments=program.environments, jobs=program.jobs)
    token = store.root / "token"
    token.write_text(TOKEN + "\n")  # as the Secret's key is mounted in the pod: a file, never an argument
    token.chmod(0o440)
    replica = _run(_container(objects, "Deployment", "iris-blue")["command"], {"--internal-token-file": str(token)},
                   store.root / "replica.log")
    config = json.loads(next(o for o in objects if o["kind"] == "ConfigMap")["data"]["gateway.json"])
    for deployment in config["deployments"].values():  # the Services' names resolve only in the cluster
        deployment["replicas"] = [replica.url]
    (store.root / "gateway.json").write_text(json.dumps(config))
    (store.root / "key_hashes").write_text(key_hash(KEY) + "\n")
    gateway = _run(_container(objects, "Deployment", "iris")["command"],
                   {"--config": str(store.root / "gateway.json"), "--internal-token-file": str(token),
                    "--key-hashes-file": str(store.root / "key_hashes")}, store.root / "gateway.log")
    try:
        replica.wait_ready()
        gateway.wait_ready()
        yield replica, gateway
    finally:
        gateway.stop()
        replica.stop()


def test_the_declared_gateway_and_replica_answer_predictions_with_a_key(
        store: IrisStore, endpoint: tuple[Server, Server]) -> None:
    replica, gateway = endpoint
    body = {"dataframe_split": json.loads(rows(store).to_json(orient="split", index=False))}
    answer = httpx.post(f"{gateway.url}/invocations", json=body, timeout=30, headers={"api-key": KEY})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == store.expected(rows(store))
    assert httpx.post(f"{gateway.url}/invocations", json=body, timeout=30).status_code == 401
    assert httpx.post(f"{gateway.url}/invocations", json=body, timeout=30,
                      headers={"api-key": "not-" + KEY}).status_code == 401
    # The replica answers its probes to anyone (the kubelet's carry no token) and nothing else without the token.
    assert httpx.get(f"{replica.url}/health", timeout=10).status_code == 200
    assert httpx.get(f"{replica.url}/v2/health/live", timeout=10).status_code == 200
    assert httpx.post(f"{replica.url}/invocations", json=body, timeout=30).status_code == 403
    assert httpx.post(f"{replica.url}/invocations", json=body, timeout=30,
                      headers={HEADER.decode(): TOKEN}).status_code == 200


def _mlspec(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLSPEC_STACK", None)
    return subprocess.run([sys.executable, "-m", "mlspec.cli.main", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=ROOT)


def test_endpoint_invoke_on_a_kubernetes_stack_sends_to_the_url_with_the_key(
        store: IrisStore, endpoint: tuple[Server, Server]) -> None:
    _, gateway = endpoint  # where `kubectl port-forward svc/iris 8080:80` would bring it
    body = {"dataframe_split": json.loads(rows(store).to_json(orient="split", index=False))}
    (store.root / "request.json").write_text(json.dumps(body))
    request = str(store.root / "request.json")
    answered = _mlspec("endpoint", "invoke", "iris", "examples/iris", "--stack", "prod", "--url", gateway.url,
                       "--api-key", KEY, "--data", request)
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout)["predictions"] == store.expected(rows(store))
    # The gateway splits iris's traffic 90/10 at random; the answer names whichever deployment it went to.
    answered_by = re.fullmatch(r"\(answered by deployment (\w+)\)\n", answered.stderr)
    assert answered_by and answered_by.group(1) in {"blue", "green"}, answered.stderr
    refused = _mlspec("endpoint", "invoke", "iris", "examples/iris", "--stack", "prod", "--url", gateway.url,
                      "--api-key", "not-" + KEY, "--data", request)
    assert refused.returncode == 1 and "endpoint answered 401" in refused.stderr


def test_runs_and_models_of_a_kubernetes_stack_read_the_tracking_uri_given(store: IrisStore) -> None:
    runs = _mlspec("runs", "examples/iris", "--stack", "prod", "--tracking-uri", store.tracking_uri, "--json")
    assert runs.returncode == 0, runs.stderr
    assert [r["experiment"] for r in json.loads(runs.stdout)] == ["serving-tests"]
    models = _mlspec("models", "examples/iris", "--stack", "prod", "--tracking-uri", store.tracking_uri, "--json")
    assert models.returncode == 0, models.stderr
    (model,) = json.loads(models.stdout)
    assert (model["name"], [v["version"] for v in model["versions"]], model["aliases"]) == (
        "iris-clf", [1], {"champion": 1})

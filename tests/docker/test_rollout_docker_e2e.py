"""A model update on the Docker target drops no request: on the iris deployment the Docker files share, a new
version of blue's model is registered, and while a few clients keep calling the endpoint, the update is performed
as Pulumi performs it (the new generation's replica container created and waited on until healthy, then the old
one stopped with its grace period and removed). Every request is answered 200, the new version answers at the
end, and the gateway's container is the one it was (its front door never went down)."""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import docker
import pulumi
import pytest

from tests.docker.iris_deployment import IrisDeployment
from tests.docker.test_iris_docker_e2e import CONTAINER, PASSWORD, REQUEST, report
from tests.pulumi.harness import CapturedResource

pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.timeout(1800)]
CLIENTS = 3
MAX_REQUESTS = 20_000  # per client: the load is bounded by count as well as by the update's duration


@dataclass
class Load:
    """Clients posting to the endpoint on keep-alive connections until stopped (or out of requests)."""

    host: str
    port: int
    headers: dict[str, str]
    body: bytes
    stop: threading.Event = field(default_factory=threading.Event)
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        for _ in range(MAX_REQUESTS):
            if self.stop.is_set():
                break
            try:
                connection.request("POST", "/invocations", self.body, self.headers)
                response = connection.getresponse()
                answer = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as error:
                status, answer = 0, repr(error).encode()
                connection.close()
                connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
            with self.lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if status != 200:
                    self.failures.append(f"{status}: {answer[:300]!r}")
        connection.close()

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


def mlflow_call(client: docker.DockerClient, mlflow: str, method: str, path: str,
                body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A call on the MLflow server's REST API from inside its own container (it is published nowhere)."""
    data = json.dumps(body).encode() if body is not None else None
    probe = ("import urllib.request\n"
             f"request = urllib.request.Request('http://127.0.0.1:5000{path}', data={data!r}, method={method!r}, "
             "headers={'Content-Type': 'application/json'})\n"
             "print(urllib.request.urlopen(request, timeout=10).read().decode())\n")
    exit_code, output = client.containers.get(mlflow).exec_run(["python", "-c", probe], user="mlspec")
    assert exit_code == 0, output.decode(errors="replace")
    return json.loads(output)


def next_generation(replica: CapturedResource, version: int) -> dict[str, Any]:
    """The inputs the program declares for blue's replica once its job has registered `version`: the same
    container serving the new version, under the name of its generation (the hash of its inputs)."""
    inputs = json.loads(json.dumps(replica.inputs))
    command = inputs["command"]
    at = command.index("--model-uri") + 1
    command[at] = command[at].rsplit("/", 1)[0] + f"/{version}"
    generation = hashlib.sha256(json.dumps({k: v for k, v in inputs.items() if k != "name"},
                                           sort_keys=True).encode()).hexdigest()[:10]
    prefix, _, index = inputs["name"].rsplit("-", 2)
    inputs["name"] = f"{prefix}-{generation}-{index}"
    return inputs


def test_a_model_update_on_docker_drops_no_request(iris_deployment: IrisDeployment,
                                                   pytestconfig: pytest.Config) -> None:
    engine, captured = iris_deployment.engine, iris_deployment.captured
    client = engine.client
    servers = [r for r in captured.of_type(CONTAINER) if not r.inputs.get("attach")]
    mlflow = next(r for r in servers if {"label": "mlspec.role", "value": "tracking"} in r.inputs["labels"])
    gateway = next(r for r in servers if {"label": "mlspec.role", "value": "gateway"} in r.inputs["labels"])
    blue = captured.get(CONTAINER, "iris-blue-0")
    gateway_before = client.api.inspect_container(gateway.outputs["name"])

    # The job's retraining, as far as the registry sees it: a new version of blue's model, the same files.
    served = int(blue.inputs["command"][blue.inputs["command"].index("--model-uri") + 1].rsplit("/", 1)[1])
    first = mlflow_call(client, mlflow.outputs["name"], "GET",
                        f"/api/2.0/mlflow/model-versions/get?name=iris-clf&version={served}")["model_version"]
    second = mlflow_call(client, mlflow.outputs["name"], "POST", "/api/2.0/mlflow/model-versions/create",
                         {"name": "iris-clf", "source": first["source"], "run_id": first["run_id"]})
    version = int(second["model_version"]["version"])
    assert version > served

    port = gateway.inputs["ports"][0]
    key = next(r.outputs["result"] for r in captured.of_type(PASSWORD) if r.name.endswith("-primary-key"))
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}", "x-mlspec-deployment": "blue"}
    load = Load(port["ip"], int(port["external"]), headers, REQUEST.read_bytes())
    clients = [threading.Thread(target=load.client, daemon=True) for _ in range(CLIENTS)]
    started = time.monotonic()
    for thread in clients:
        thread.start()
    try:
        time.sleep(1.0)  # traffic flows before the update begins
        # What `pulumi up` does for a replaced replica that names a new container: create, wait healthy...
        new_inputs = next_generation(blue, version)
        args = pulumi.runtime.MockResourceArgs(typ=CONTAINER, name=blue.name, inputs=new_inputs, provider="",
                                               resource_id="", custom=True)
        engine.new_resource(args)
        assert not engine.errors
        created_s = time.monotonic() - started
        # ...then delete the old one: a stop with the declared grace period (the provider's destroyGraceSeconds),
        # then removal.
        old = client.containers.get(blue.outputs["name"])
        assert old.attrs["Config"]["StopTimeout"] == int(blue.inputs["stopTimeout"])  # for a `docker stop` too
        stopping = time.monotonic()
        old.stop(timeout=int(blue.inputs["destroyGraceSeconds"]))
        stopped_s = time.monotonic() - stopping
        old.reload()
        exit_code = old.attrs["State"]["ExitCode"]
        old.remove(v=True)
        time.sleep(1.0)  # traffic goes on to the new generation alone
    finally:
        load.stop.set()
        for thread in clients:
            thread.join(timeout=60)
    duration_s = time.monotonic() - started

    report(pytestconfig, [
        f"rollout on Docker: {load.requests} requests from {CLIENTS} clients in {duration_s:.1f} s, "
        f"{len(load.failures)} failed; new generation healthy after {created_s:.1f} s, old one stopped in "
        f"{stopped_s:.1f} s (exit {exit_code})"])
    assert load.requests > 100 and not load.failures, (load.statuses, load.failures[:5])
    assert exit_code == 0  # it drained and exited on SIGTERM: not killed at the end of its grace period

    # The new version answers, through the same gateway container, which never restarted.
    probe = http.client.HTTPConnection(port["ip"], int(port["external"]), timeout=30)
    probe.request("GET", "/v2/models/iris-clf", headers={"Authorization": f"Bearer {key}"})
    answer = probe.getresponse()
    assert answer.status == 200 and json.loads(answer.read())["versions"] == [str(version)]
    gateway_after = client.api.inspect_container(gateway.outputs["name"])
    assert gateway_after["Id"] == gateway_before["Id"] and gateway_after["RestartCount"] == 0
    assert gateway_after["State"]["StartedAt"] == gateway_before["State"]["StartedAt"]

"""A deployed docker stack operated with the local engine's commands, on a real engine: `status` and `logs [-f]` read
the containers by their labels, `compute stop|start|restart` act on an instance's container, `endpoint invoke|keys`
reach the published gateway with the stack's keys, and `runs`/`models` read the workspace's MLflow where the host
reaches it: published on the publish address, behind basic authentication with the stack's credentials. A replica
whose server hangs is restarted by its liveness probe (green's is quick, so the check takes seconds).

The iris program is deployed once for the module under a workspace name of its own (iris-ops), so its containers,
networks and ports stay apart from the iris end-to-end test's. The stack's Pulumi state is what the program exported
(the Automation API needs Pulumi's engine, which does not run here). A compute instance's JupyterLab image is not
built: the instance's container is a stand-in on the runtime image, made with the labels ComputeInstance gives it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from mlspec.cli import stack_state
from mlspec.cli.main import main
from tests.cli.recorded_stack import RecordedStack
from tests.docker.engine import DockerEngine
from tests.pulumi.harness import Captured, run_program

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = "iris-ops"
INSTANCE = """
---
kind: Compute
name: notebook
type: instance
"""
# Counts forever, a line every 0.2 s: what `logs -f` must keep showing.
# Green's replica is found hung within seconds (its initial delay covers a slow start on a busy machine).
LIVENESS = {"initial_delay": 15, "period": 2, "timeout": 1, "failure_threshold": 3}
GREEN_PROBES = f"    probes:\n      liveness: {json.dumps(LIVENESS)}\n"
COUNTER = "import itertools, time\nfor i in itertools.count():\n    print(i, flush=True)\n    time.sleep(0.2)"

pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.timeout(1800)]


@dataclass
class Deployed:
    spec: Path
    captured: Captured
    engine: DockerEngine

    def cli(self, capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
        code = main([*argv, str(self.spec), "--target", "docker"])
        out, err = capfd.readouterr()
        return code, out, err


@pytest.fixture(scope="module")
def deployed(docker_client: docker.DockerClient, base_image: str, wheelhouse: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    root = tmp_path_factory.mktemp("operations")
    spec = root / "examples" / "iris"
    shutil.copytree(ROOT / "examples" / "iris", spec, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    (spec / "mlspec.stacks.yaml").unlink()
    manifest = spec / "mlspec.yaml"
    text = manifest.read_text().replace("name: iris-demo", f"name: {WORKSPACE}", 1)
    green = "    model: iris-forest@latest\n"
    assert green in text
    manifest.write_text(text.replace(green, green + GREEN_PROBES, 1))
    project = root / "stacks" / "iris"
    assert main(["compile", str(spec), "--target", "docker", "-o", str(project)]) == 0
    engine = DockerEngine(client=docker_client, keep_images=bool(os.environ.get("MLSPEC_TEST_KEEP_IMAGES")))
    try:
        config = {"mlspec:baseImage": base_image, "mlspec:wheelhouse": str(wheelhouse),
                  "mlspec:publishAddress": "127.0.0.1"}
        captured = run_program(project, config, mocks=engine)
        assert not engine.errors
        _stand_in_instance(engine, captured)
        manifest.write_text(manifest.read_text() + INSTANCE)  # the commands' spec knows the instance
        yield Deployed(spec, captured, engine)
    finally:
        problems = engine.cleanup()
        assert not problems, problems


def _stand_in_instance(engine: DockerEngine, captured: Captured) -> None:
    runtime = next(i for i in captured.of_type("docker:index/image:Image") if i.name == "runtime")
    labels = {**engine.labels, "mlspec.workspace": WORKSPACE, "mlspec.resource": "compute/notebook",
              "mlspec.role": "notebooks"}
    name = f"{WORKSPACE}-notebook"
    for leftover in engine.client.containers.list(all=True, filters={"name": f"^{name}$", "label": "mlspec.test"}):
        leftover.remove(force=True)
    engine.client.containers.run(runtime.inputs["imageName"], ["python", "-c", COUNTER], name=name, labels=labels,
                                 user="mlspec", detach=True, network_disabled=True)


@pytest.fixture
def stack(deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> RecordedStack:
    """The stack's outputs as the program exported them; and MLflow's credential variables restored afterwards."""
    state = RecordedStack(dict(deployed.captured.exports), [r.urn for r in deployed.captured.resources])
    monkeypatch.setattr(stack_state, "opener", lambda args: state)
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return state


def _status(deployed: Deployed, capfd: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, err = deployed.cli(capfd, "status", "--json")
    assert code == 0, err
    found: dict[str, Any] = json.loads(out)
    return found


def logical(name: str) -> str:
    """A replica's container name less its generation (`iris-blue-<10 hex>-0` is `iris-blue-0`): it changes with
    every rollout (see mlspec.pulumi.endpoint.generation)."""
    return re.sub(r"-[0-9a-f]{10}-(\d+)$", r"-\1", name)


def test_status_lists_each_resources_containers(deployed: Deployed, capfd: pytest.CaptureFixture[str]) -> None:
    found = _status(deployed, capfd)
    resources = found["resources"]
    endpoint = {logical(row["name"]): row for row in resources["endpoint/iris"]}
    assert set(endpoint) == {"iris-gateway", "iris-blue-0", "iris-green-0"}
    assert all(row["state"] == "running" and row["health"] == "healthy" for row in endpoint.values()), endpoint
    assert endpoint["iris-blue-0"]["role"] == "replica of blue" and endpoint["iris-gateway"]["role"] == "gateway"
    for job in ("train", "train-forest"):
        [row] = resources[f"job/{job}"]
        assert (row["state"], row["exit_code"]) == ("exited", 0) and row["image"].startswith(f"{WORKSPACE}-job-")
    roles = {row["role"]: row for row in resources[f"workspace/{WORKSPACE}"]}
    assert roles["tracking"]["health"] == roles["tracking-proxy"]["health"] == "healthy"
    gateway = deployed.captured.named("iris-gateway").inputs["ports"][0]
    assert found["urls"]["endpoint/iris"] == f"http://127.0.0.1:{int(gateway['external'])}"
    assert found["missing"] == []
    code, out, _ = deployed.cli(capfd, "status")
    assert code == 0 and "endpoint/iris  http://127.0.0.1:" in out
    assert re.search(r"\biris-blue-[0-9a-f]{10}-0\b", out), out


def test_logs_of_a_job_and_of_an_endpoints_containers(deployed: Deployed, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = deployed.cli(capfd, "logs", "train")
    assert code == 0 and "logistic: test accuracy" in out
    code, out, _ = deployed.cli(capfd, "logs", "iris")
    assert code == 0
    prefixes = {logical(line.split(" | ", 1)[0].strip()) for line in out.splitlines() if " | " in line}
    assert {"iris-gateway", "iris-blue-0", "iris-green-0"} <= prefixes, out[-2000:]


def test_logs_follow_shows_lines_as_they_come(deployed: Deployed) -> None:
    command = [sys.executable, "-m", "mlspec.cli.main", "logs", "notebook", "-f", "-n", "1", str(deployed.spec),
               "--target", "docker"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert process.stdout is not None
    try:
        first = int(process.stdout.readline())
        later = [int(process.stdout.readline()) for _ in range(5)]
    finally:
        process.kill()
        process.wait()
    assert later == list(range(first + 1, first + 6))  # printed after the command started, each once


def test_compute_stop_start_and_restart_the_instances_container(
        deployed: Deployed, capfd: pytest.CaptureFixture[str]) -> None:
    container = deployed.engine.client.containers.get(f"{WORKSPACE}-notebook")
    code, out, _ = deployed.cli(capfd, "compute", "stop", "notebook")
    assert code == 0 and "stopped notebook" in out
    container.reload()
    assert container.status == "exited"
    [row] = _status(deployed, capfd)["resources"]["compute/notebook"]
    assert row["state"] == "exited"
    assert deployed.cli(capfd, "compute", "start", "notebook")[0] == 0
    container.reload()
    assert container.status == "running"
    started = container.attrs["State"]["StartedAt"]
    assert deployed.cli(capfd, "compute", "restart", "notebook")[0] == 0
    container.reload()
    assert container.status == "running" and container.attrs["State"]["StartedAt"] != started


def test_invoke_and_keys_use_the_published_gateway_and_the_stacks_keys(
        deployed: Deployed, stack: RecordedStack, capfd: pytest.CaptureFixture[str]) -> None:
    request = deployed.spec / "request.json"
    code, out, err = deployed.cli(capfd, "endpoint", "invoke", "iris", "--data", str(request))
    assert code == 0, err
    assert json.loads(out)["predictions"] == [0, 2] and "(answered by deployment" in err
    code, out, _ = deployed.cli(capfd, "endpoint", "keys", "iris", "--json")
    shown = json.loads(out)
    passwords = {r.name: r.outputs["result"] for r in deployed.captured.of_type(
        "random:index/randomPassword:RandomPassword")}
    assert (shown["primary"], shown["secondary"]) == (passwords["iris-primary-key"], passwords["iris-secondary-key"])
    code, _, err = deployed.cli(capfd, "endpoint", "invoke", "iris", "--data", str(request), "--api-key", "wrong")
    assert code == 1 and "endpoint answered 401" in err


def _get(url: str, authorization: str | None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": authorization} if authorization else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_runs_and_models_read_the_published_mlflow_with_the_stacks_credentials(
        deployed: Deployed, stack: RecordedStack, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, err = deployed.cli(capfd, "runs", "--json")
    assert code == 0, err
    runs = json.loads(out)
    finished = {r["job"] for r in runs if r["status"] == "FINISHED"}
    assert {r["job"] for r in runs} == finished == {"train", "train-forest"}
    code, out, err = deployed.cli(capfd, "models", "--json")
    assert code == 0, err
    assert {m["name"] for m in json.loads(out)} == {"iris-clf", "iris-forest"}
    # The published address answers the MLflow UI and API to the stack's credentials alone.
    url, credentials = stack.recorded["MLflow.url"], stack.recorded["MLflow.credentials"]
    good = "Basic " + base64.b64encode(f"{credentials['username']}:{credentials['password']}".encode()).decode()
    bad = "Basic " + base64.b64encode(f"{credentials['username']}:not-it".encode()).decode()
    search = f"{url}/api/2.0/mlflow/registered-models/search"
    assert (_get(f"{url}/", good), _get(search, good)) == (200, 200)
    assert (_get(f"{url}/", None), _get(search, bad)) == (401, 401)
    code, out, _ = deployed.cli(capfd, "runs")
    assert code == 0 and f"browse them at {url}" in out


def test_a_hung_replica_is_restarted_by_its_liveness_probe(deployed: Deployed, stack: RecordedStack,
                                                           capfd: pytest.CaptureFixture[str]) -> None:
    """Docker only marks a container unhealthy. Green's server is frozen (SIGSTOP: its port open, nothing
    answered); the supervisor in its container fails it after failure_threshold probes, stops it and exits, Docker's
    restart policy starts the container again, and green answers through the gateway once its model is back."""
    [replica] = deployed.engine.client.containers.list(
        filters={"label": [f"mlspec.workspace={WORKSPACE}", "mlspec.deployment=green"]})
    assert replica.attrs["RestartCount"] == 0
    # PID 1 is the supervisor; its one child, the scoring server.
    code, out = replica.exec_run(["sh", "-c", "kill -STOP $(cat /proc/1/task/1/children)"], user="mlspec")
    assert code == 0, out
    frozen = time.monotonic()
    budget = LIVENESS["initial_delay"] + LIVENESS["period"] * LIVENESS["failure_threshold"] + LIVENESS["timeout"] + 30
    while replica.attrs["RestartCount"] == 0:
        assert time.monotonic() - frozen < budget, "the frozen replica was not restarted"
        time.sleep(0.5)
        replica.reload()
    restarted = time.monotonic() - frozen
    logs = replica.logs().decode(errors="replace")
    assert "/v2/health/live failed 3 probes in a row" in logs, logs[-2000:]
    while replica.attrs["State"].get("Health", {}).get("Status") != "healthy":
        assert time.monotonic() - frozen < budget + 120, replica.attrs["State"]
        time.sleep(0.5)
        replica.reload()
    code, out, err = deployed.cli(capfd, "endpoint", "invoke", "iris", "--data", str(deployed.spec / "request.json"),
                                  "--deployment", "green")
    assert code == 0 and "(answered by deployment green" in err, err
    print(f"liveness restart: {restarted:.1f} s after the freeze; healthy again after "
          f"{time.monotonic() - frozen:.1f} s")

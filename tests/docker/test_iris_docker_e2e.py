"""The compiled iris stack on a real Docker engine (the deployment the Docker files share): its images are built, its
containers run exactly as declared, the jobs train and register models in the workspace's MLflow server, and the
endpoint answers with its key."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.docker.iris_deployment import IrisDeployment
from tests.pulumi.harness import CapturedResource

ROOT = Path(__file__).resolve().parents[2]
REQUEST = ROOT / "examples" / "iris" / "request.json"
CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/image:Image"
PASSWORD = "random:index/randomPassword:RandomPassword"
MIB = 1024 * 1024

# Image builds dominate: about two minutes here, more on a slower or busier machine (setup may debootstrap too).
pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.timeout(1800)]


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def assert_runs_as_declared(client: docker.DockerClient, resource: CapturedResource) -> dict[str, Any]:
    """`docker inspect` of the container matches every input the program declared for it."""
    declared = resource.inputs
    info = client.api.inspect_container(resource.outputs["name"])
    where = f"container {resource.name}"
    assert info["Image"] == client.images.get(declared["image"]).id, where
    assert info["Config"]["Cmd"] == declared["command"], where
    if "entrypoints" in declared:
        assert info["Config"]["Entrypoint"] == declared["entrypoints"], where
    assert set(declared.get("envs", [])) <= set(info["Config"]["Env"]), where
    assert info["Config"]["User"] == declared["user"] and declared["user"] not in ("", "0", "root"), where
    for port in declared.get("ports", []):
        binding = info["NetworkSettings"]["Ports"][f"{int(port['internal'])}/tcp"][0]
        assert (binding["HostIp"], int(binding["HostPort"])) == (port["ip"], int(port["external"])), where
    mounts = {(m["Name"], m["Destination"], m["RW"]) for m in info["Mounts"] if m["Type"] == "volume"}
    assert mounts == {(v["volumeName"], v["containerPath"], not v.get("readOnly", False))
                      for v in declared.get("volumes", [])}, where
    networks = info["NetworkSettings"]["Networks"]
    assert set(networks) == {n["name"] for n in declared["networksAdvanced"]}, where
    for network in declared["networksAdvanced"]:
        assert set(network.get("aliases", [])) <= set(networks[network["name"]]["Aliases"] or []), where
    if "healthcheck" in declared:
        assert info["Config"]["Healthcheck"]["Test"] == declared["healthcheck"]["tests"], where
    if "memory" in declared:
        assert info["HostConfig"]["Memory"] == int(declared["memory"]) * MIB, where
    if "cpuShares" in declared:
        assert info["HostConfig"]["CpuShares"] == int(declared["cpuShares"]), where
    assert (info["HostConfig"]["RestartPolicy"]["Name"] or "no") == declared.get("restart", "no"), where
    host = info["HostConfig"]  # the hardening: read-only root, tmpfs, capabilities, privileges, limits
    assert host["ReadonlyRootfs"] is bool(declared.get("readOnly", False)), where
    assert (host.get("Tmpfs") or {}) == declared.get("tmpfs", {}), where
    capabilities = declared.get("capabilities", {})
    assert (host.get("CapDrop") or [], host.get("CapAdd") or []) == (capabilities.get("drops", []),
                                                                     capabilities.get("adds", [])), where
    assert (host.get("SecurityOpt") or []) == declared.get("securityOpts", []), where
    assert [(u["Name"], u["Soft"], u["Hard"]) for u in host.get("Ulimits") or []] == [
        (u["name"], int(u["soft"]), int(u["hard"])) for u in declared.get("ulimits", [])], where
    if "memorySwap" in declared:
        assert host["MemorySwap"] == int(declared["memorySwap"]) * MIB, where
    if "cpus" in declared:
        assert host["NanoCpus"] == round(float(declared["cpus"]) * 1e9), where
    labels = {item["label"]: item["value"] for item in declared.get("labels", [])}
    assert labels.items() <= info["Config"]["Labels"].items(), where
    return info


LOCKED_DOWN = """
import errno, os
try:
    open("/mlspec-probe", "w")
    print("root writable")
except OSError as error:
    print("root read-only" if error.errno == errno.EROFS else f"root {error}")
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
print("caps", status["CapEff"].strip(), status["CapBnd"].strip(), "nnp", status["NoNewPrivs"].strip())
for folder in ("/tmp", os.path.expanduser("~")):
    with open(os.path.join(folder, ".mlspec-probe"), "w") as probe:
        probe.write("ok")
    os.remove(os.path.join(folder, ".mlspec-probe"))
print("scratch writable")
"""


def assert_locked_down(client: docker.DockerClient, name: str) -> None:
    """Inside a running container: the root is read-only, no capability is held or can be gained, and the tmpfs
    scratch folders take writes."""
    exit_code, output = client.containers.get(name).exec_run(["python", "-c", LOCKED_DOWN])
    lines = output.decode(errors="replace").splitlines()
    assert exit_code == 0 and lines == ["root read-only", f"caps {'0' * 16} {'0' * 16} nnp 1", "scratch writable"], \
        (name, lines)


def tracking_query(client: docker.DockerClient, mlflow: str, path: str) -> dict[str, Any]:
    """GET on the MLflow server's REST API from inside its own container (it is published nowhere)."""
    probe = ("import urllib.request; "
             f"print(urllib.request.urlopen('http://127.0.0.1:5000{path}', timeout=10).read().decode())")
    exit_code, output = client.containers.get(mlflow).exec_run(["python", "-c", probe], user="mlspec")
    assert exit_code == 0, output.decode(errors="replace")
    return json.loads(output)


def status_from(client: docker.DockerClient, container: str, url: str, body: bytes,
                headers: dict[str, str]) -> int:
    """The status a POST from inside another container gets (0: no connection)."""
    probe = ("import sys, urllib.request, urllib.error\n"
             f"request = urllib.request.Request({url!r}, data={body!r}, method='POST', headers={headers!r})\n"
             "try:\n    print(urllib.request.urlopen(request, timeout=10).status)\n"
             "except urllib.error.HTTPError as error:\n    print(error.code)\n"
             "except OSError:\n    print(0)\n")
    exit_code, output = client.containers.get(container).exec_run(["python", "-c", probe], user="mlspec")
    assert exit_code == 0, output.decode(errors="replace")
    return int(output.decode().strip().splitlines()[-1])


def report(pytestconfig: pytest.Config, lines: list[str]) -> None:
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + "\n".join(lines))


def test_iris_stack_on_docker_trains_registers_and_serves(
        iris_deployment: IrisDeployment, pytestconfig: pytest.Config, record_property: Any) -> None:
    docker_engine, captured = iris_deployment.engine, iris_deployment.captured
    client = docker_engine.client
    started = time.monotonic()
    provisioned_s = iris_deployment.provisioned_s

    # Every image the program declares was built on the engine, under the tag it declared.
    images = captured.of_type(IMAGE)
    assert images, "the program declares no image"
    built = {c.name for c in docker_engine.find(IMAGE)}
    assert built == {i.name for i in images}
    sizes = {i.inputs["imageName"]: int(client.images.get(i.inputs["imageName"]).attrs["Size"]) for i in images}

    # Every container runs (or ran) exactly as declared, as a non-root user.
    containers = captured.of_type(CONTAINER)
    ran = [r for r in containers if r.inputs.get("attach")]
    labellers = [r for r in ran if {"label": "mlspec.role", "value": "labels"} in r.inputs["labels"]]
    jobs = [r for r in ran if r not in labellers]
    servers = [r for r in containers if not r.inputs.get("attach")]
    assert len(jobs) == 2 and len(labellers) == 1 and servers
    for resource in containers:
        info = assert_runs_as_declared(client, resource)
        if resource in servers:
            assert info["State"]["Running"] and info["State"]["Health"]["Status"] == "healthy", resource.name
            uid = client.containers.get(info["Id"]).exec_run(["id", "-u"]).output.decode().strip()
            assert uid != "0", resource.name
            assert_locked_down(client, info["Name"].lstrip("/"))
    for job in [*jobs, *labellers]:
        assert job.outputs["exitCode"] == 0, job.outputs.get("containerLogs")

    # The jobs registered their models in the workspace's MLflow server.
    mlflow = next(r for r in servers if {"label": "mlspec.role", "value": "tracking"} in r.inputs["labels"])
    registered = tracking_query(client, mlflow.outputs["name"], "/api/2.0/mlflow/registered-models/search")
    versions = {m["name"]: [v["version"] for v in m.get("latest_versions", [])]
                for m in registered.get("registered_models", [])}
    assert versions.keys() == {"iris-clf", "iris-forest"} and all(versions.values()), versions
    # The server alone: MLflow's job execution, which mlspec turns off, would run eight more processes in it.
    processes = [row[-1] for row in client.api.top(mlflow.outputs["name"], ps_args="-eo pid,args")["Processes"]]
    assert not [p for p in processes if "huey" in p or "_job_runner" in p], processes

    # The endpoint answers through the gateway's published port with a key, and refuses without one.
    gateway = next(r for r in servers if {"label": "mlspec.role", "value": "gateway"} in r.inputs["labels"])
    port = gateway.inputs["ports"][0]
    url = f"http://{port['ip']}:{int(port['external'])}/invocations"
    keys = [r.outputs["result"] for r in captured.of_type(PASSWORD) if r.name.endswith("-key")]
    assert keys and all(keys)
    body, json_type = REQUEST.read_bytes(), {"Content-Type": "application/json"}
    status, answer = post(url, body, {**json_type, "Authorization": f"Bearer {keys[0]}"})
    assert status == 200, answer
    assert json.loads(answer)["predictions"] == [0, 2]  # a setosa and a virginica
    status, _ = post(url, body, json_type)
    assert status == 401
    status, _ = post(url, body, {**json_type, "Authorization": "Bearer not-the-key"})
    assert status == 401

    # Only the gateway reaches a replica by name. Replicas are on internal networks alone (no way out): their
    # endpoint's, and the model network they fetch their model on, where the tracking server is the only other
    # container; from it, a replica has no name, and its address answers 403 without the endpoint's internal token.
    token = next(r.outputs["result"] for r in captured.of_type(PASSWORD) if r.name.endswith("-internal-token"))
    replicas = [r for r in servers if any(item["label"] == "mlspec.deployment" for item in r.inputs["labels"])]
    for each in replicas:
        for name in client.api.inspect_container(each.outputs["name"])["NetworkSettings"]["Networks"]:
            assert client.networks.get(name).attrs["Internal"] is True, (each.name, name)
    replica = replicas[0]
    model_network = next(n["name"] for n in mlflow.inputs["networksAdvanced"] if n["name"].endswith("-models"))
    address = client.api.inspect_container(replica.outputs["name"])["NetworkSettings"]["Networks"][
        model_network]["IPAddress"]
    direct = f"http://{address}:8080/invocations"
    assert status_from(client, mlflow.outputs["name"], direct, body, json_type) == 403
    alias = replica.name.rsplit("-", 1)[0]  # iris-blue-0: the alias all of blue's replicas share
    assert status_from(client, mlflow.outputs["name"], f"http://{alias}:8080/invocations", body,
                       json_type) == 0  # its name resolves on the endpoint's internal network alone
    assert status_from(client, mlflow.outputs["name"], direct, body,
                       {**json_type, "x-mlspec-internal-token": token}) == 200

    checked_s = time.monotonic() - started
    record_property("provision_seconds", round(provisioned_s, 1))
    record_property("image_sizes", sizes)
    slowest = sorted(docker_engine.created, key=lambda c: -c.seconds)[:6]
    report(pytestconfig, [
        f"iris on Docker: provisioned in {provisioned_s:.0f} s, checked in {checked_s:.0f} s",
        *[f"  image {name}: {size / 1e6:.0f} MB" for name, size in sorted(sizes.items())],
        *[f"  {c.typ.split(':')[-1]} {c.name}: {c.seconds:.1f} s" for c in slowest],
    ])

"""Every container the compiled iris and torch programs declare is locked down, sized, and on the networks it needs:
a read-only root with tmpfs scratch, no capabilities, no-new-privileges, a bound on its user's processes, hard
memory and CPU limits (the gateway's and MLflow's too), and replicas reachable only by the gateway."""

from __future__ import annotations

import pytest

from mlspec.pulumi import containers
from tests.pulumi.conftest import CONTAINER, RegistryMocks, compile_copy
from tests.pulumi.harness import Captured, container_files, run_program

NETWORK = "docker:index/network:Network"


@pytest.fixture(scope="module", params=["iris", "torch-digits"])
def program(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Captured:
    return run_program(compile_copy(tmp_path_factory.mktemp(request.param), request.param), {}, mocks=RegistryMocks())


def test_every_container_declares_the_hardening(program: Captured) -> None:
    found = program.of_type(CONTAINER)
    roles = {item["value"] for r in found for item in r.inputs["labels"] if item["label"] == "mlspec.role"}
    assert {"tracking", "gateway"} <= roles and len(found) >= 4
    for container in found:
        inputs, where = container.inputs, container.name
        assert inputs["readOnly"] is True, where
        assert set(inputs["tmpfs"]) == {"/tmp", "/home/mlspec"}, where
        for options in inputs["tmpfs"].values():
            assert {"nosuid", "nodev"} <= set(options.split(",")) and "size=" in options, where
        # The home is the user's (a mode alone leaves it root's); /tmp is everyone's, sticky.
        assert {"uid=1000", "gid=1000"} <= set(inputs["tmpfs"]["/home/mlspec"].split(",")), where
        assert "mode=1777" in inputs["tmpfs"]["/tmp"].split(","), where
        assert inputs["capabilities"] == {"drops": ["ALL"]}, where
        assert inputs["securityOpts"] == ["no-new-privileges:true"], where
        assert inputs["ulimits"] == [{"name": "nproc", "soft": containers.PROCESS_LIMIT,
                                      "hard": containers.PROCESS_LIMIT}], where
        assert inputs["memory"] > 0 and inputs["memorySwap"] == inputs["memory"], where
        assert float(inputs["cpus"]) > 0 and inputs["cpuShares"] == round(float(inputs["cpus"]) * 1024), where
        assert inputs["user"] == "mlspec" and not inputs.get("privileged"), where
        assert "uploads" not in inputs, where  # Docker copies nothing into a read-only container
        if inputs["command"][2] == "mlspec.runtime.envfiles":  # its files come through its environment
            assert all(path.startswith("/tmp/") for path in container_files(inputs)), where


def test_only_a_job_may_run_programs_from_its_scratch(program: Captured) -> None:
    for container in program.of_type(CONTAINER):
        job = container.inputs.get("attach") and container.name != "labels"
        assert ("noexec" in container.inputs["tmpfs"]["/tmp"].split(",")) is not job, container.name
        assert "noexec" in container.inputs["tmpfs"]["/home/mlspec"].split(","), container.name


def test_replicas_are_on_internal_networks_alone(program: Captured) -> None:
    """The endpoint's network (shared with its gateway alone) and the model network (shared with MLflow alone)."""
    internal = {n.inputs["name"] for n in program.of_type(NETWORK) if n.inputs.get("internal")}
    members: dict[str, set[str]] = {}
    for container in program.of_type(CONTAINER):
        for network in container.inputs["networksAdvanced"]:
            members.setdefault(network["name"], set()).add(container.name)
    replicas = {r.name for r in program.of_type(CONTAINER)
                if any(item["label"] == "mlspec.deployment" for item in r.inputs["labels"])}
    [model_network] = [n for n in internal if n.endswith("-models")]
    assert members[model_network] - replicas == {f"{program.of_type('mlspec:docker:Workspace')[0].name}-mlflow"}
    for replica in replicas:
        joined = {n["name"] for n in program.get(CONTAINER, replica).inputs["networksAdvanced"]}
        assert joined <= internal, replica
        [own] = joined - {model_network}
        others = members[own] - replicas
        assert len(others) == 1 and next(iter(others)).endswith("-gateway"), (replica, others)


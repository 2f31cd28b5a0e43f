"""A retrained model rolls its replicas without a gap: under mocks, each replica container's Docker name carries
its generation, so a change names new containers (Pulumi creates them before it deletes the old, which nothing
turns around with delete-before-replace), while the gateway, which finds replicas by their shared alias, stays."""

from __future__ import annotations

from pathlib import Path

from tests.pulumi.conftest import CONTAINER, RegistryMocks, compile_copy
from tests.pulumi.harness import run_program
from tests.pulumi.test_preview_diff import _edit_train


def test_a_new_model_version_names_new_replica_containers_and_leaves_the_gateway(tmp_path: Path) -> None:
    registry = RegistryMocks()
    before = run_program(compile_copy(tmp_path / "before", "iris"), {}, mocks=registry)
    again = run_program(compile_copy(tmp_path / "again", "iris"), {}, mocks=RegistryMocks())
    after = run_program(compile_copy(tmp_path / "after", "iris", _edit_train), {}, mocks=registry)

    assert not [r.name for r in after.resources if r.delete_before_replace]
    for replica in ("iris-blue-0", "iris-green-0"):
        old, new = before.get(CONTAINER, replica).inputs, after.get(CONTAINER, replica).inputs
        assert old["name"] != new["name"], replica  # a new generation: created before the old is deleted
        assert again.get(CONTAINER, replica).inputs["name"] == old["name"]  # the same inputs: the same name
        prefix, generation, index = new["name"].rsplit("-", 2)
        assert prefix == f"iris-demo-{replica.rsplit('-', 1)[0]}" and len(generation) == 10 and index == "0"
        # Every generation shares one alias on the internal network: the name the gateway resolves.
        assert old["networksAdvanced"] == new["networksAdvanced"]
        assert new["networksAdvanced"][0]["aliases"] == [replica.rsplit("-", 1)[0]]
        # A replica told to stop keeps answering for the gateway's probe period (10 s) plus its timeout (2 s),
        # then drains what it holds (up to 10 s): Docker waits that long before it kills it.
        command = new["command"]
        assert command[command.index("--drain-notice") + 1] == "12"
        assert new["stopTimeout"] == new["destroyGraceSeconds"] == 27
    gateway = "iris-gateway"
    assert before.get(CONTAINER, gateway).inputs == after.get(CONTAINER, gateway).inputs


def test_any_changed_input_of_a_replica_names_a_new_generation(tmp_path: Path) -> None:
    """Docker cannot change a container in place: whatever input changes (here a variable), the name must too,
    or the new container could not be created beside the old; the other deployment's replicas keep theirs."""
    def add_variable(spec: Path) -> None:
        text = (spec / "mlspec.yaml").read_text()
        blue = "    model: iris-clf@latest\n"
        assert blue in text
        (spec / "mlspec.yaml").write_text(text.replace(blue, blue + "    environment_variables: {LOG_LEVEL: debug}\n"))

    before = run_program(compile_copy(tmp_path / "before", "iris"), {}, mocks=RegistryMocks())
    after = run_program(compile_copy(tmp_path / "after", "iris", add_variable), {}, mocks=RegistryMocks())
    old, new = before.get(CONTAINER, "iris-blue-0").inputs, after.get(CONTAINER, "iris-blue-0").inputs
    assert "LOG_LEVEL=debug" in new["envs"] and "LOG_LEVEL=debug" not in old["envs"]
    assert old["name"] != new["name"]
    assert before.get(CONTAINER, "iris-green-0").inputs == after.get(CONTAINER, "iris-green-0").inputs
    assert before.get(CONTAINER, "iris-gateway").inputs == after.get(CONTAINER, "iris-gateway").inputs

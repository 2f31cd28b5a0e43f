"""Which components of the Docker program a change to examples/iris creates, updates, replaces or deletes, as the
plan of a pull request states them; tests/pulumi/test_preview_diff.py runs the same program under Pulumi's mocks
and finds the same resources changing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlspec.backends.pulumi.changes import GeneratedChange, generated_changes
from mlspec.graph import load_graph
from tests.pulumi.batch_spec import ENDPOINT as ENDPOINT_NAME
from tests.pulumi.batch_spec import SPEC, batch_spec
from tests.pulumi.conftest import RegistryMocks, compile_copy
from tests.pulumi.harness import Captured, run_program
from tests.pulumi.spec_edits import (
    Edit,
    add_deployment,
    add_endpoint,
    base_and_head,
    edit_train_py,
    more_cpus,
    more_requirements,
    remove_forest,
    shift_traffic,
)

JOB, ENDPOINT, ENVIRONMENT = "mlspec:docker:TrainingJob", "mlspec:docker:OnlineEndpoint", "mlspec:docker:Environment"


def _changes(tmp_path: Path, *edits: Edit) -> list[GeneratedChange]:
    return generated_changes(*base_and_head(tmp_path, *edits), "docker")


def test_an_unchanged_spec_changes_nothing(tmp_path: Path) -> None:
    assert _changes(tmp_path) == []


def test_editing_train_py_gives_both_jobs_a_new_run_and_the_endpoint_their_new_model_versions(tmp_path: Path) -> None:
    # The jobs' new content hash names a new image and a new run container: a replace. The replicas that serve
    # their models take the versions the new runs register; the workspace, the environment and the gateway's
    # traffic are untouched.
    assert _changes(tmp_path, edit_train_py) == [
        GeneratedChange(JOB, "train", "replace", ("content_hash", 'files["src/train.py"]')),
        GeneratedChange(JOB, "train-forest", "replace", ("content_hash", 'files["src/train.py"]')),
        GeneratedChange(ENDPOINT, "iris", "update", ("deployments.blue.version", "deployments.green.version")),
    ]


def test_a_traffic_shift_updates_the_endpoint_alone(tmp_path: Path) -> None:
    assert _changes(tmp_path, shift_traffic) == [
        GeneratedChange(ENDPOINT, "iris", "update", ("traffic.blue", "traffic.green"))]


def test_a_new_deployment_updates_its_endpoint_and_a_new_endpoint_is_created(tmp_path: Path) -> None:
    assert _changes(tmp_path / "deployment", add_deployment) == [
        GeneratedChange(ENDPOINT, "iris", "update", ("deployments.teal",))]
    assert _changes(tmp_path / "endpoint", add_endpoint) == [
        GeneratedChange(ENDPOINT, "canary", "create")]


def test_a_removed_job_is_deleted_last(tmp_path: Path) -> None:
    assert _changes(tmp_path, *remove_forest) == [
        GeneratedChange(ENDPOINT, "iris", "update", ("traffic.blue", "traffic.green", "deployments.green")),
        GeneratedChange(JOB, "train-forest", "delete"),
    ]


def test_a_new_requirement_rebuilds_the_environment_and_reaches_everything_on_its_image(tmp_path: Path) -> None:
    # The replicas run the environment's image too, though no argument of the endpoint names a new value.
    changes = _changes(tmp_path, more_requirements)
    assert [(c.type, c.name, c.action) for c in changes] == [
        (ENVIRONMENT, "sklearn", "replace"), (JOB, "train", "replace"), (JOB, "train-forest", "replace"),
        (ENDPOINT, "iris", "update")]
    assert changes[0].fields == ("content_hash", "requirements")
    assert changes[1].fields == ("content_hash", "environment")
    assert changes[3].fields == ("deployments.blue.environment", "deployments.blue.version",
                                 "deployments.green.environment", "deployments.green.version")


def test_a_bigger_compute_changes_container_limits_in_place(tmp_path: Path) -> None:
    # The compute is no part of the jobs' content hash: their containers keep their runs, only their CPU limit
    # changes (pulumi-docker updates limits in place).
    assert _changes(tmp_path, more_cpus) == [
        GeneratedChange(JOB, "train", "update", ("size.cpus",)),
        GeneratedChange(JOB, "train-forest", "update", ("size.cpus",)),
        GeneratedChange(ENDPOINT, "iris", "update", ("deployments.blue.size.cpus", "deployments.green.size.cpus")),
    ]


def test_a_change_reads_as_data() -> None:
    change = GeneratedChange(JOB, "train", "replace", ("content_hash",))
    assert change.as_dict() == {"type": JOB, "name": "train", "action": "replace", "fields": ["content_hash"]}


def _owners(before: Captured, after: Captured) -> set[tuple[str, str]]:
    """The components (type, name) owning a resource that the program registers differently after the change
    (other inputs, or only on one side), as `pulumi preview` would find them."""
    def state(captured: Captured) -> dict[tuple[str, str], str]:
        return {r.key: json.dumps(r.inputs, sort_keys=True) for r in captured.resources if r.custom}

    def owner(captured: Captured, key: tuple[str, str]) -> tuple[str, str]:
        resource = captured.get(*key)
        while resource.custom and resource.parent:
            resource = captured.by_urn[resource.parent]
        return resource.key

    old, new = state(before), state(after)
    changed = {key for key in old.keys() | new.keys() if old.get(key) != new.get(key)}
    return {owner(after if key in new else before, key) for key in changed}


@pytest.mark.parametrize("edits", [(shift_traffic,), (more_cpus,), (more_requirements,), tuple(remove_forest)],
                         ids=["traffic", "cpus", "requirements", "remove"])
def test_the_components_named_are_those_whose_resources_the_program_registers_differently(
        tmp_path: Path, edits: tuple[Edit, ...]) -> None:
    registry = RegistryMocks()  # one registry across both runs, as MLflow's would be
    before = run_program(compile_copy(tmp_path / "before", "iris"), {}, mocks=registry)
    def edit_all(spec: Path) -> None:
        for edit in edits:
            edit(spec)

    after = run_program(compile_copy(tmp_path / "after", "iris", edit_all), {}, mocks=registry)
    changes = generated_changes(load_graph([tmp_path / "before" / "examples" / "iris"]),
                                load_graph([tmp_path / "after" / "examples" / "iris"]), "docker")
    assert changes, "the edit changes something"
    assert {(c.type, c.name) for c in changes} == _owners(before, after)


def test_a_batch_endpoints_new_setting_or_retrained_model_is_a_new_scoring_run(tmp_path: Path) -> None:
    base = load_graph([batch_spec(tmp_path / "base")])
    setting = load_graph([batch_spec(tmp_path / "setting", SPEC.replace("mini_batch_size: 10", "mini_batch_size: 20"))])
    retrained = batch_spec(tmp_path / "retrained")
    edit_train_py(retrained)
    batch = "mlspec:docker:BatchEndpoint"
    assert generated_changes(base, setting, "docker") == [
        GeneratedChange(batch, ENDPOINT_NAME, "replace", ("content_hash", "mini_batch_size"))]
    assert generated_changes(base, load_graph([retrained]), "docker") == [
        GeneratedChange(JOB, "train", "replace", ("content_hash", 'files["src/train.py"]')),
        GeneratedChange(batch, ENDPOINT_NAME, "replace", ("content_hash", "version"))]

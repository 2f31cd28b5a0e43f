"""Which images, objects and Secrets of the Kubernetes program a change to examples/iris creates, updates, replaces
or deletes: objects compared field by field with the same image placeholders on both sides, a training Job named by
its content hash replaced by its successor, a Job's immutable pod template replacing it, a Deployment rolling."""

from __future__ import annotations

from pathlib import Path

from mlspec.backends.pulumi.changes import GeneratedChange, generated_changes
from mlspec.graph import Graph
from mlspec.spec.stacks import KubernetesStack
from tests.pulumi.spec_edits import (
    Edit,
    add_deployment,
    base_and_head,
    edit_train_py,
    more_cpus,
    remove_forest,
    shift_traffic,
)

IMAGE, JOB, CONFIG_MAP = "mlspec:kubernetes:Image", "kubernetes:batch/v1:Job", "kubernetes:core/v1:ConfigMap"
DEPLOYMENT, SERVICE = "kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service"
PDB, POLICY = "kubernetes:policy/v1:PodDisruptionBudget", "kubernetes:networking.k8s.io/v1:NetworkPolicy"
QUOTA = "kubernetes:core/v1:ResourceQuota"
RELABELLED = ('metadata.labels["mlspec.io/hash"]',)  # an endpoint's objects carry a hash of what it declares


def _changes(tmp_path: Path, *edits: Edit) -> tuple[Graph, list[GeneratedChange]]:
    base, head = base_and_head(tmp_path, *edits)
    return head, generated_changes(base, head, "kubernetes")


def _job(head: Graph, job: str) -> str:
    """The Job's name on the head side: its name and the first 10 digits of its content hash."""
    return f"iris-demo/{job}-{head.nodes[f'job/{job}'].hash[:10]}"


def test_an_unchanged_spec_changes_nothing(tmp_path: Path) -> None:
    assert _changes(tmp_path)[1] == []


def test_editing_train_py_replaces_both_jobs_and_rolls_the_replicas_onto_their_models(tmp_path: Path) -> None:
    head, changes = _changes(tmp_path, edit_train_py)
    contract = ("metadata.name", 'data["node-0.json"].tags["mlspec.hash"]', 'data["node-0.json"].content_hash')
    pod = ("metadata.name", "spec.template.spec.containers[0].image", "spec.template.spec.initContainers[0].image")
    rolls = ('metadata.annotations["mlspec.io/depends-on"]',
             'spec.template.metadata.annotations["mlspec.io/model-source"]')
    assert changes == [
        GeneratedChange(IMAGE, "job_train", "replace", ("content_hash", 'files["src/train.py"]')),
        GeneratedChange(IMAGE, "job_train_forest", "replace", ("content_hash", 'files["src/train.py"]')),
        GeneratedChange(CONFIG_MAP, _job(head, "train") + "-run", "replace", contract),
        GeneratedChange(JOB, _job(head, "train"), "replace", pod),
        GeneratedChange(CONFIG_MAP, _job(head, "train-forest") + "-run", "replace", contract),
        GeneratedChange(JOB, _job(head, "train-forest"), "replace", pod),
        GeneratedChange(DEPLOYMENT, "iris-demo/iris-blue", "update", rolls),
        GeneratedChange(DEPLOYMENT, "iris-demo/iris-green", "update", rolls),
    ]


def test_a_traffic_shift_changes_the_gateways_config_and_rolls_its_pods(tmp_path: Path) -> None:
    changes = _changes(tmp_path, shift_traffic)[1]
    assert {c.action for c in changes} == {"update"}
    assert not [c for c in changes if c.type in (JOB, IMAGE)]
    by_name = {(c.type, c.name): c.fields for c in changes}
    assert by_name.pop((CONFIG_MAP, "iris-demo/iris-gateway")) == (
        *RELABELLED, 'data["gateway.json"].deployments.blue.weight', 'data["gateway.json"].deployments.green.weight')
    assert by_name.pop((DEPLOYMENT, "iris-demo/iris")) == (
        *RELABELLED, 'spec.template.metadata.annotations["mlspec.io/config-hash"]')
    # Every other object of the endpoint is only relabelled: no replica rolls.
    assert set(by_name.values()) == {RELABELLED}
    assert len(by_name) == 11  # 2 deployments x (Deployment, Service, PDB, NetworkPolicy), the gateway's 3 others


def test_a_new_deployment_creates_its_objects(tmp_path: Path) -> None:
    changes = _changes(tmp_path, add_deployment)[1]
    assert [(c.type, c.name) for c in changes if c.action == "create"] == [
        (DEPLOYMENT, "iris-demo/iris-teal"), (SERVICE, "iris-demo/iris-teal"), (PDB, "iris-demo/iris-teal"),
        (POLICY, "iris-demo/iris-teal")]
    gateway = next(c for c in changes if c.name == "iris-demo/iris-gateway")
    assert gateway.fields == (*RELABELLED, 'data["gateway.json"].deployments.teal')
    quota = next(c for c in changes if c.type == QUOTA)
    assert (quota.name, quota.action, "spec.hard.pods" in quota.fields) == ("iris-demo/workspace", "update", True)


def test_a_removed_job_and_deployment_are_deleted_last(tmp_path: Path) -> None:
    base, head = base_and_head(tmp_path, *remove_forest)
    changes = generated_changes(base, head, "kubernetes")
    forest = f"iris-demo/train-forest-{base.nodes['job/train-forest'].hash[:10]}"
    deleted = [(c.type, c.name) for c in changes if c.action == "delete"]
    assert deleted == [
        (IMAGE, "job_train_forest"), (CONFIG_MAP, f"{forest}-run"), (JOB, forest),
        (DEPLOYMENT, "iris-demo/iris-green"), (SERVICE, "iris-demo/iris-green"), (PDB, "iris-demo/iris-green"),
        (POLICY, "iris-demo/iris-green")]
    assert [c.action for c in changes[-len(deleted):]] == ["delete"] * len(deleted)
    assert all(c.fields == () for c in changes if c.action == "delete")


def test_a_job_whose_pod_template_changes_under_the_same_name_is_replaced_and_a_deployment_rolls(
        tmp_path: Path) -> None:
    # The compute is no part of a job's content hash: its Job keeps its name, and its pod template, which the API
    # server will not change, asks for more CPU.
    head, changes = _changes(tmp_path, more_cpus)
    cpu = ("spec.template.spec.containers[0].resources.requests.cpu",
           "spec.template.spec.containers[0].resources.limits.cpu")
    found = {(c.type, c.name): c for c in changes}
    assert found[JOB, _job(head, "train")] == GeneratedChange(JOB, _job(head, "train"), "replace", cpu)
    assert found[JOB, _job(head, "train-forest")].action == "replace"
    assert found[DEPLOYMENT, "iris-demo/iris-blue"] == GeneratedChange(DEPLOYMENT, "iris-demo/iris-blue", "update",
                                                                       (*RELABELLED, *cpu))
    assert not [c for c in changes if c.type == IMAGE]


def test_the_stacks_namespace_names_the_objects(tmp_path: Path) -> None:
    base, head = base_and_head(tmp_path, shift_traffic)
    changes = generated_changes(base, head, "kubernetes", KubernetesStack(namespace="iris"))
    assert "iris/iris-gateway" in {c.name for c in changes}
    assert all(c.name.startswith("iris/") for c in changes)

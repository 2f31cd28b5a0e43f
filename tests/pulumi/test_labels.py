"""Tags and descriptions on the Docker target: labels on what each resource creates, and MLflow labels applied by
a run-once container, so a change to them alone never retrains a job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from tests.pulumi.conftest import CONTAINER, RegistryMocks, compile_copy
from tests.pulumi.harness import Captured, CapturedResource, container_file, run_program

IMAGE = "docker:index/image:Image"


def _labelled(spec: Path, job_tags: dict[str, str] | None = None, endpoint_tags: dict[str, str] | None = None) -> None:
    path = spec / "mlspec.yaml"
    docs = list(yaml.safe_load_all(path.read_text()))
    docs.append({"kind": "Model", "name": "iris-clf", "job": "train", "tags": {"owner": "ana"},
                 "description": "Iris classifier"})
    for doc in docs:
        if doc["kind"] == "Workspace":
            doc["tags"] = {"env": "demo"}
        if doc["kind"] == "Job" and doc["name"] == "train":
            doc.update(tags=job_tags or {"team": "ml"}, description="Baseline")
        if doc["kind"] == "Endpoint":
            doc["tags"] = endpoint_tags or {"tier": "gold"}
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def _labels(resource: CapturedResource) -> dict[str, str]:
    return {item["label"]: item["value"] for item in resource.inputs.get("labels", [])}


def _program(base: Path, **tags: Any) -> Captured:
    return run_program(compile_copy(base, "iris", lambda spec: _labelled(spec, **tags)), {}, mocks=RegistryMocks())


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Captured:
    return _program(tmp_path_factory.mktemp("labelled"))


def test_resource_tags_are_docker_labels_of_what_it_creates(labelled: Captured) -> None:
    for name in ("iris-blue-0", "iris-green-0", "iris-gateway"):
        labels = _labels(labelled.get(CONTAINER, name))
        assert labels["mlspec.tag.tier"] == "gold" and labels["mlspec.resource"] == "endpoint/iris"
        assert "mlspec.tag.env" not in labels  # the workspace's tags stay on the workspace's objects
    assert _labels(labelled.get(CONTAINER, "iris-demo-mlflow"))["mlspec.tag.env"] == "demo"
    for kind in ("docker:index/network:Network", "docker:index/volume:Volume"):
        made = [r for r in labelled.of_type(kind) if r.parent and r.parent.endswith("::iris-demo")]
        assert made  # the network and the model network; the volume
        for created in made:
            assert _labels(created) == {"mlspec.tag.env": "demo", "mlspec.workspace": "iris-demo"}
            # Docker cannot relabel a network or a volume; replacing the volume would lose the tracking store.
            assert created.ignore_changes == ("labels",)
    # An endpoint's own network carries no tags, so a tag change never recreates it under its containers.
    replicas = labelled.get("docker:index/network:Network", "iris-replicas")
    assert _labels(replicas) == {"mlspec.workspace": "iris-demo", "mlspec.resource": "endpoint/iris"}


def test_a_job_container_carries_no_labels_so_a_tag_change_never_reruns_it(labelled: Captured) -> None:
    job = labelled.get(CONTAINER, "train")
    assert not [k for k in _labels(job) if k.startswith("mlspec.tag.")]
    run = container_file(job.inputs)
    assert "team" not in run["tags"] and "mlflow.note.content" not in run["tags"]


def test_the_labeller_applies_mlflow_labels_after_the_jobs(labelled: Captured) -> None:
    labeller = labelled.get(CONTAINER, "labels")
    inputs = labeller.inputs
    assert inputs["command"] == ["python", "-m", "mlspec.runtime.envfiles", "python", "-m", "mlspec.runtime.labels",
                                 "/tmp/mlspec/labels.json"]
    assert (inputs["mustRun"], inputs["attach"], inputs["restart"]) == (False, True, "no")
    assert inputs["image"] == labelled.get(IMAGE, "runtime").inputs["imageName"]
    contract = container_file(inputs)
    train_hash = _labels(labelled.get(CONTAINER, "train"))["mlspec.hash"]
    assert contract["tracking_uri"] == "http://mlflow:5000"
    assert contract["experiments"] == {"iris": {"tags": {"env": "demo"}, "description":
                                                "Iris classifiers trained on a local cluster and served blue/green."}}
    assert contract["jobs"] == [{"job": "train", "content_hash": train_hash, "tags": {"team": "ml"},
                                 "description": "Baseline"}]
    assert contract["models"] == [{"name": "iris-clf", "content_hash": train_hash, "tags": {"owner": "ana"},
                                   "description": "Iris classifier"}]
    deps = {urn.rsplit("::", 1)[-1] for urn in labeller.dependencies}
    assert {"train", "train-forest", "iris-demo-mlflow"} <= deps


def test_a_job_tag_change_reruns_only_the_labeller(tmp_path: Path, labelled: Captured) -> None:
    after = _program(tmp_path, job_tags={"team": "research"})
    before_state = {r.key: r.inputs for r in labelled.resources}
    changed = {r.key for r in after.resources if before_state.get(r.key) != r.inputs}
    assert changed == {(CONTAINER, "labels")}
    assert after.get(CONTAINER, "labels").inputs["name"] != labelled.get(CONTAINER, "labels").inputs["name"]


def test_an_endpoint_tag_change_touches_only_its_containers(tmp_path: Path, labelled: Captured) -> None:
    after = _program(tmp_path, endpoint_tags={"tier": "silver"})
    before_state = {r.key: r.inputs for r in labelled.resources}
    changed = {r.key for r in after.resources if before_state.get(r.key) != r.inputs}
    # Docker cannot relabel a running container: these are recreated; nothing is retrained or rebuilt.
    assert changed == {(CONTAINER, "iris-blue-0"), (CONTAINER, "iris-green-0"), (CONTAINER, "iris-gateway")}


class _FailingLabeller(RegistryMocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        id_, state = super().new_resource(args)
        if {"label": "mlspec.role", "value": "labels"} in (args.inputs.get("labels") or []):
            state.update(exitCode=1, containerLogs="mlspec: cannot apply labels: ConnectionError: refused")
        return id_, state


def test_a_failing_labeller_fails_the_update(tmp_path: Path) -> None:
    project = compile_copy(tmp_path, "iris", _labelled)
    with pytest.raises(Exception, match=r"(?s)applying tags and descriptions to MLflow failed.*refused"):
        run_program(project, {}, mocks=_FailingLabeller())

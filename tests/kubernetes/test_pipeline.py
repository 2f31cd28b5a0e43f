"""A pipeline on the kubernetes target: a Job named by the pipeline's content hash whose one pod runs the pipeline
runner, its step results on a claim of the pipeline's (shared by the Jobs of a changed pipeline, which reuse its
unchanged steps), replaced after a disruption but not after the pipeline failed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from mlspec.backends.pulumi.kubernetes.assembly import build_objects, context_of
from mlspec.backends.pulumi.model import build_program
from mlspec.graph import load_graph
from mlspec.runtime.pipeline.contract import CONTAINER_FOLDER, PipelineRun
from tests.kubernetes.conftest import SPECS
from tests.kubernetes.consistency import problems

KUBERNETES_VERSION = "1.37.0"
Object = dict[str, Any]


def _objects(folder: Path) -> list[Object]:
    program = build_program(load_graph([folder]), folder / "out")
    return build_objects(program, context_of(program)).objects


def _job(objects: list[Object]) -> Object:
    (job,) = [o for o in objects if o["kind"] == "Job" and o["metadata"]["labels"].get("mlspec.io/job") == "wine"]
    return job


def _contract(objects: list[Object]) -> PipelineRun:
    name = _job(objects)["metadata"]["name"]
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{name}-run")
    return PipelineRun.model_validate_json(config["data"]["pipelinerun.json"])


@pytest.fixture()
def spec(tmp_path: Path) -> Path:
    folder = tmp_path / "pipeline"
    shutil.copytree(SPECS["pipeline"], folder, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    return folder


def test_the_pipeline_is_a_valid_job_running_the_runner_with_its_steps_on_a_claim(spec: Path) -> None:
    objects = _objects(spec)
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    assert problems(objects, external_secrets=set()) == []
    job = _job(objects)
    pod = job["spec"]["template"]["spec"]
    (runner,) = pod["containers"]
    assert runner["command"] == ["python", "-m", "mlspec.runtime.pipeline", "/etc/mlspec/pipelinerun.json"]
    assert runner["resources"]["limits"] == {"cpu": "1000m", "memory": "2048Mi"}  # the compute's size
    claim = next(v for v in pod["volumes"] if "persistentVolumeClaim" in v)
    assert claim["persistentVolumeClaim"]["claimName"] == "wine-pipeline"
    assert {"name": claim["name"], "mountPath": CONTAINER_FOLDER} in runner["volumeMounts"]
    claims = [o for o in objects if o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == "wine-pipeline"]
    assert len(claims) == 1 and claims[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    # One pod at a time; a disrupted pod is replaced (reusing finished steps), the runner's own failure ends the Job.
    assert job["spec"]["parallelism"] == 1 and job["spec"]["backoffLimit"] == 3
    (rule,) = job["spec"]["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [1, 2]
    run = _contract(objects)
    assert job["metadata"]["name"] == f"wine-{run.content_hash[:10]}"  # an unchanged pipeline is the same Job
    assert run.folder == f"{CONTAINER_FOLDER}/wine"  # on the claim, not per content hash
    assert [s.name for s in run.steps] == ["prepare", "train", "evaluate"]
    tracking = "http://mlflow.pipeline-demo.svc.cluster.local:5000"
    assert run.tracking_uri == tracking and all(s.template.tracking_uri == tracking for s in run.steps)
    assert {s.name: s.template.code for s in run.steps} == {
        "prepare": "/opt/mlspec-job/files/src/prep", "train": "/opt/mlspec-job/files/src/train",
        "evaluate": "/opt/mlspec-job/files/src/evaluate"}
    train = next(s for s in run.steps if s.name == "train")
    assert train.template.outputs["model"].register_as == "wine-clf"


def test_a_changed_step_makes_a_new_job_on_the_same_claim_that_reuses_the_others(spec: Path) -> None:
    before = _objects(spec)
    assert _job(_objects(spec))["metadata"]["name"] == _job(before)["metadata"]["name"]
    path = spec / "src" / "train" / "train.py"
    path.write_text(path.read_text() + "\nprint('edited')\n")
    after = _objects(spec)
    assert _job(after)["metadata"]["name"] != _job(before)["metadata"]["name"]
    claims = [{o["metadata"]["name"] for o in objects if o["kind"] == "PersistentVolumeClaim"}
              for objects in (before, after)]
    assert claims[0] == claims[1]
    old = {s.name: s.static_hash for s in _contract(before).steps}
    new = {s.name: s.static_hash for s in _contract(after).steps}
    assert [name for name in old if old[name] != new[name]] == ["train"]

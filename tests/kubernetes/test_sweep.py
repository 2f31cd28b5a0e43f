"""A sweep on the kubernetes target: a Job named by the sweep's content hash whose one pod runs the sweep's
controller, its study on a claim of the sweep's, replaced after a disruption but not after the sweep failed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from mlspec.backends.pulumi.kubernetes.assembly import build_objects, context_of
from mlspec.backends.pulumi.kubernetes.sweeps import STUDY_MOUNT
from mlspec.backends.pulumi.model import build_program
from mlspec.graph import load_graph
from mlspec.runtime.sweep.contract import SweepRun
from tests.kubernetes.conftest import SPECS
from tests.kubernetes.consistency import problems

KUBERNETES_VERSION = "1.37.0"
Object = dict[str, Any]


def _objects(folder: Path) -> list[Object]:
    program = build_program(load_graph([folder]), folder / "out")
    return build_objects(program, context_of(program)).objects


def _job(objects: list[Object]) -> Object:
    (job,) = [o for o in objects if o["kind"] == "Job" and o["metadata"]["labels"].get("mlspec.io/job") == "tune"]
    return job


@pytest.fixture()
def spec(tmp_path: Path) -> Path:
    folder = tmp_path / "sweep"
    shutil.copytree(SPECS["sweep"], folder, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    return folder


def test_the_sweep_is_a_valid_job_running_the_controller_with_its_study_on_a_claim(spec: Path) -> None:
    objects = _objects(spec)
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    assert problems(objects, external_secrets=set()) == []
    job = _job(objects)
    name = job["metadata"]["name"]
    pod = job["spec"]["template"]["spec"]
    (controller,) = pod["containers"]
    assert controller["command"] == ["python", "-m", "mlspec.runtime.sweep", "/etc/mlspec/sweeprun.json"]
    assert controller["resources"]["limits"] == {"cpu": "1000m", "memory": "2048Mi"}  # the compute's size
    claim = next(v for v in pod["volumes"] if "persistentVolumeClaim" in v)
    assert claim["persistentVolumeClaim"]["claimName"] == "tune-sweep"
    assert {"name": claim["name"], "mountPath": STUDY_MOUNT} in controller["volumeMounts"]
    claims = [o for o in objects if o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == "tune-sweep"]
    assert len(claims) == 1 and claims[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    # One pod at a time; a disrupted pod is replaced (and resumes), the controller's own failure ends the Job.
    assert job["spec"]["parallelism"] == 1 and job["spec"]["backoffLimit"] == 3
    (rule,) = job["spec"]["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [1, 2]
    assert "activeDeadlineSeconds" not in job["spec"]  # no limits.timeout in the example
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{name}-run")
    run = SweepRun.model_validate_json(config["data"]["sweeprun.json"])
    content_hash = run.template.content_hash
    assert name == f"tune-{content_hash[:10]}"  # as a command job's: an unchanged sweep is the same Job
    assert run.folder == f"{STUDY_MOUNT}/{content_hash[:16]}"
    assert run.sweep.limits.max_concurrent_trials == 2 and run.sweep.sampling_algorithm == "bayesian"
    assert run.sweep.early_termination is not None and run.sweep.early_termination.policy == "bandit"
    assert run.template.tracking_uri == "http://mlflow.sweep-demo.svc.cluster.local:5000"
    assert run.template.outputs["model"].register_as == "digits-sgd"


def test_the_sweeps_timeout_bounds_the_job_with_room_to_register(spec: Path) -> None:
    path = spec / "mlspec.yaml"
    path.write_text(path.read_text().replace("trial_timeout: 5m}", "trial_timeout: 5m, timeout: 1h}"))
    job = _job(_objects(spec))
    assert job["spec"]["activeDeadlineSeconds"] == 3600 + 300


def test_the_job_is_renamed_when_the_sweep_changes_and_only_then(spec: Path) -> None:
    before = _job(_objects(spec))["metadata"]["name"]
    assert _job(_objects(spec))["metadata"]["name"] == before
    path = spec / "mlspec.yaml"
    path.write_text(path.read_text().replace("slack_factor: 0.05", "slack_factor: 0.1"))
    assert _job(_objects(spec))["metadata"]["name"] != before

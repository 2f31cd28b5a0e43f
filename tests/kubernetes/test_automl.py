"""An AutoML job on the kubernetes target: a Job named by the job's content hash whose one pod runs the AutoML runner
on the automl image with the table baked into the job's image, replaced after a disruption but not after the
search failed; the endpoint serving its model runs on the same image."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from mlspec.backends.pulumi.kubernetes.assembly import build_objects, context_of
from mlspec.backends.pulumi.kubernetes.automl import GRACE_S
from mlspec.backends.pulumi.model import build_program
from mlspec.graph import load_graph
from mlspec.runtime.automl.contract import AutoMLRun
from tests.kubernetes.conftest import SPECS, compiled
from tests.kubernetes.consistency import problems

KUBERNETES_VERSION = "1.37.0"
Object = dict[str, Any]


def _objects(folder: Path) -> list[Object]:
    program = build_program(load_graph([folder]), folder / "out")
    return build_objects(program, context_of(program)).objects


def _job(objects: list[Object]) -> Object:
    (job,) = [o for o in objects
              if o["kind"] == "Job" and o["metadata"]["labels"].get("mlspec.io/job") == "wine-automl"]
    return job


@pytest.fixture()
def spec(tmp_path: Path) -> Path:
    folder = tmp_path / "automl"
    shutil.copytree(SPECS["automl"], folder, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    return folder


def test_the_job_is_a_valid_job_running_the_automl_runner(spec: Path) -> None:
    objects = _objects(spec)
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    compiled_ = compiled("automl", pinned=True)  # with the Secrets the manifests' README has the user create
    assert problems(compiled_.objects, external_secrets=compiled_.external_secrets, pinned=True) == []
    job = _job(objects)
    name = job["metadata"]["name"]
    pod = job["spec"]["template"]["spec"]
    (runner,) = pod["containers"]
    assert runner["image"] == "mlspec-image:job_wine_automl"  # the job's image: the automl image and the table
    assert runner["command"] == ["python", "-m", "mlspec.runtime.automl", "/etc/mlspec/automlrun.json", "--result",
                                 "/tmp/mlspec-job/result.json"]
    assert runner["resources"]["limits"] == {"cpu": "1000m", "memory": "2048Mi"}  # one node of the compute
    assert [c["name"] for c in pod["initContainers"]] == ["wait-for-tracking"]
    # One pod at a time; a disrupted pod is replaced (and searches again), the runner's own failure ends the Job.
    assert job["spec"]["parallelism"] == 1 and job["spec"]["backoffLimit"] == 2
    (rule,) = job["spec"]["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [1, 2]
    # The budget (60 s), FLAML's overrun (30 s) and room to refit and register.
    assert job["spec"]["activeDeadlineSeconds"] == 60 + 30 + GRACE_S
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{name}-run")
    run = AutoMLRun.model_validate_json(config["data"]["automlrun.json"])
    assert name == f"wine-automl-{run.content_hash[:10]}"  # as a command job's: an unchanged job is the same Job
    assert (run.task, run.target, run.metric, run.concurrency, run.n_splits) == \
        ("classification", "cultivar", "AUC_weighted", 2, 5)
    assert run.data == "/opt/mlspec-job/files/data/wine.csv" and run.workdir == "/tmp/mlspec-job"
    assert run.tracking_uri == "http://mlflow.automl-demo.svc.cluster.local:5000"
    assert run.outputs["model"].register_as == "wine-clf"
    assert run.cpus == 1  # two searches share the pod's one core: each its share, at least one


def test_the_endpoint_serves_the_model_on_the_automl_image(spec: Path) -> None:
    objects = _objects(spec)
    (replicas,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "wine-best"]
    (server,) = replicas["spec"]["template"]["spec"]["containers"]
    assert server["image"] == "mlspec-image:automl_runtime"
    # Retrained (a new Job): the replicas roll, as for a command job's model.
    assert replicas["spec"]["template"]["metadata"]["annotations"]["mlspec.io/model-source"] == \
        _job(objects)["metadata"]["labels"]["mlspec.io/hash"]


def test_the_job_is_renamed_when_the_search_changes_and_only_then(spec: Path) -> None:
    before = _job(_objects(spec))["metadata"]["name"]
    assert _job(_objects(spec))["metadata"]["name"] == before
    path = spec / "mlspec.yaml"
    path.write_text(path.read_text().replace("n_cross_validations: 5", "n_cross_validations: 4"))
    assert _job(_objects(spec))["metadata"]["name"] != before


def test_tags_are_refused_at_their_line_where_nothing_writes_them_to_mlflow(
        spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlspec.cli.main import main

    path = spec / "mlspec.yaml"
    path.write_text(path.read_text().replace("type: automl\n", "type: automl\ntags: {team: ml}\n"))
    assert main(["validate", str(spec), "--target", "kubernetes"]) == 2
    err = capsys.readouterr().err
    assert "mlspec.yaml:23:1: error: Job 'wine-automl': tags is not supported on the kubernetes target" in err
    assert main(["validate", str(spec), "--target", "docker"]) == 0

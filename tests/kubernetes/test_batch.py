"""A batch endpoint on the kubernetes target: a Job per scoring run named by what it scores, its journal and
predictions on the endpoint's claim, the local engine's scorer and contract."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from mlspec.backends.pulumi.kubernetes.assembly import build_objects, context_of
from mlspec.backends.pulumi.kubernetes.batch import CLAIM_MOUNT
from mlspec.backends.pulumi.manifests import external_secrets
from mlspec.backends.pulumi.model import build_program
from mlspec.graph import load_graph
from mlspec.runtime.batch.contract import BatchRun
from tests.kubernetes.conftest import SPECS
from tests.kubernetes.consistency import problems

KUBERNETES_VERSION = "1.37.0"
Object = dict[str, Any]


def _objects(folder: Path) -> list[Object]:
    return _built(folder)[0]


def _built(folder: Path) -> tuple[list[Object], set[str]]:
    """The objects, and the Secrets a manifests user creates for them."""
    program = build_program(load_graph([folder]), folder / "out")
    ctx = context_of(program)
    return build_objects(program, ctx).objects, {s.name for s in external_secrets(program, ctx)}


def _scoring(objects: list[Object]) -> Object:
    (job,) = [o for o in objects if o["kind"] == "Job" and o["metadata"]["labels"]["app.kubernetes.io/component"]
              == "batch"]
    return job


@pytest.fixture()
def spec(tmp_path: Path) -> Path:
    folder = tmp_path / "distributed"
    shutil.copytree(SPECS["distributed"], folder, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    return folder


def _edit(folder: Path, old: str, new: str) -> None:
    path = folder / "mlspec.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_a_scoring_run_is_a_valid_job_on_the_endpoints_claim(spec: Path) -> None:
    objects, secrets = _built(spec)
    job = _scoring(objects)
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    assert problems(objects, external_secrets=secrets) == []
    name = job["metadata"]["name"]
    assert name.startswith("score-")
    assert job["spec"]["backoffLimit"] == 2  # retry_settings.max_retries: each new pod resumes from the journal
    assert job["spec"]["parallelism"] == 1  # one writer of the journal on a ReadWriteOnce claim
    pod = job["spec"]["template"]["spec"]
    (score,) = pod["containers"]
    # The local engine's scorer, its contract from the ConfigMap, its result on the claim.
    assert score["command"][:4] == ["python", "-m", "mlspec.runtime.batch", "/etc/mlspec/batchrun.json"]
    claim = next(v for v in pod["volumes"] if "persistentVolumeClaim" in v)
    assert claim["persistentVolumeClaim"]["claimName"] == "score-batch"
    assert {"name": claim["name"], "mountPath": CLAIM_MOUNT} in score["volumeMounts"]
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{name}-run")
    run = BatchRun.model_validate_json(config["data"]["batchrun.json"])
    assert run.output == f"{CLAIM_MOUNT}/predictions"  # the journal lives beside the predictions (.mlspec-batch)
    assert run.input == "/opt/mlspec-job/files/data/rows.csv"  # baked into the run's image, as a job's data
    assert run.model_uri == "models:/ddp-mlp@latest"
    assert run.tracking_uri == "http://mlflow.distributed.svc.cluster.local:5000"
    assert (run.mini_batch_size, run.max_retries, run.timeout, run.max_concurrency) == (8, 2, 60, 2)
    # After the Job that registers the model it scores; on its cluster's PriorityClass (its quota, its turns).
    assert job["metadata"]["annotations"]["mlspec.io/depends-on"].startswith("Job/train-ddp-")
    assert pod["priorityClassName"] == "distributed-cpu"
    claims = [o for o in objects if o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == "score-batch"]
    assert len(claims) == 1 and claims[0]["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_the_job_is_renamed_when_what_it_scores_changes_and_only_then(spec: Path) -> None:
    before = _scoring(_objects(spec))["metadata"]["name"]
    # Labels and an unrelated resource leave the run as it is: applying the spec again scores nothing.
    _edit(spec, "name: score\ntype: batch\n", "name: score\ntype: batch\ntags: {owner: ops}\n")
    _edit(spec, "autoscale: {min_instances: 1,", "autoscale: {min_instances: 2,")
    assert _scoring(_objects(spec))["metadata"]["name"] == before
    # New rows are a new run.
    rows = spec / "data" / "rows.csv"
    rows.write_text(rows.read_text() + "0,0,0,0,0,0,0,0\n")
    after_data = _scoring(_objects(spec))["metadata"]["name"]
    assert after_data != before
    # So is a retrained model (its job's code changed) ...
    train = spec / "src" / "train.py"
    train.write_text(train.read_text() + "\n# retrained\n")
    after_model = _scoring(_objects(spec))["metadata"]["name"]
    assert after_model not in (before, after_data)
    # ... and another setting of the run.
    _edit(spec, "mini_batch_size: 8", "mini_batch_size: 16")
    assert _scoring(_objects(spec))["metadata"]["name"] not in (before, after_data, after_model)


def test_another_model_reference_is_another_run(spec: Path) -> None:
    before = _scoring(_objects(spec))["metadata"]["name"]
    _edit(spec, "model: ddp-mlp@latest\ninput", "model: ddp-mlp:3\ninput")
    job = _scoring(_objects(spec))
    assert job["metadata"]["name"] != before
    assert "mlspec.io/depends-on" not in job["metadata"].get("annotations", {})  # a pinned version: no job to await

"""An AutoML job in the Docker program, under Pulumi's mocks: one run-once container named by the job's content hash
runs the AutoML runner on an image with mlspec's automl extra, the table baked into the job's image, sized for the
searches it runs at once; the versions it registers come back from its log and the endpoint serves them on the same
image."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mlspec.backends.pulumi.automl import AUTOML_REQUIREMENTS
from mlspec.backends.pulumi.model import build_program
from mlspec.graph import load_graph
from mlspec.pulumi.automl import AUTOMLRUN
from mlspec.pulumi.job import JobFailed
from mlspec.runtime.automl.contract import AutoMLRun
from tests.pulumi.conftest import CONTAINER, ROOT, RegistryMocks, compile_copy
from tests.pulumi.harness import Captured, container_files, run_program

IMAGE = "docker:index/image:Image"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_copy(tmp_path_factory.mktemp("automl"), "automl")


@pytest.fixture(scope="module")
def captured(project: Path) -> Captured:
    return run_program(project, {}, mocks=RegistryMocks())


def _runner(captured: Captured) -> tuple[dict, AutoMLRun]:  # type: ignore[type-arg]
    (container,) = [r for r in captured.of_type(CONTAINER) if r.name == "wine-automl"]
    return container.inputs, AutoMLRun.model_validate_json(container_files(container.inputs)[AUTOMLRUN])


def test_the_runner_runs_once_named_by_the_jobs_hash_sized_for_its_searches(captured: Captured) -> None:
    inputs, run = _runner(captured)
    assert inputs["name"] == f"automl-demo-job-wine-automl-{run.content_hash[:12]}"  # unchanged: not re-run
    assert inputs["command"][-6:] == ["python", "-m", "mlspec.runtime.automl", AUTOMLRUN, "--result",
                                      "/tmp/mlspec-job/result.json"]
    assert inputs["restart"] == "no" and inputs["attach"] is True and inputs["mustRun"] is False
    assert "volumes" not in inputs or not inputs["volumes"]  # nothing persists: a run again searches afresh
    # Two searches at once: the compute's size twice over, as two of its nodes; each search a node's cores.
    assert inputs["memory"] == 2 * 2048 and inputs["cpus"] == "2" and run.cpus == 1
    assert inputs["readOnly"] is True and inputs["user"] == "mlspec"


def test_the_contract_carries_every_automl_setting_and_the_baked_table(captured: Captured) -> None:
    _, run = _runner(captured)
    assert (run.job, run.task, run.target, run.metric) == ("wine-automl", "classification", "cultivar",
                                                           "AUC_weighted")
    assert run.algorithms == ["LogisticRegression", "LightGBM", "RandomForest", "ExtremeRandomTrees",
                              "GradientBoosting"]
    assert (run.timeout_s, run.trial_timeout_s, run.max_trials, run.concurrency, run.n_splits) == \
        (60.0, 30.0, 400, 2, 5)
    assert run.seed == int(run.content_hash[:8], 16) % 2**31  # as on the local engine
    assert run.data == "/opt/mlspec-job/files/data/wine.csv"  # where the job's Dockerfile copies its files
    assert run.experiment == "wine-automl" and run.tracking_uri == "http://mlflow:5000"
    assert run.artifact_location == "mlflow-artifacts:/wine-automl"
    assert run.outputs["model"].register_as == "wine-clf" and run.outputs["model"].path.startswith("/tmp/")
    assert run.workdir == "/tmp/mlspec-job"  # the container's tmpfs: its root filesystem is read-only


def test_the_job_image_holds_the_table_on_the_automl_image(project: Path, captured: Captured) -> None:
    (image,) = [r for r in captured.of_type(IMAGE) if r.name == "wine-automl"]
    context = Path(project) / image.inputs["build"]["context"]
    assert (context / "files" / "data" / "wine.csv").read_bytes() == \
        (ROOT / "examples" / "automl" / "data" / "wine.csv").read_bytes()
    assert "mlspec-automl:" in image.inputs["build"]["args"]["ENVIRONMENT_IMAGE"]


def test_the_automl_image_installs_mlspecs_automl_extra_as_pyproject_pins_it(project: Path) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = pyproject["optional-dependencies"]["automl"]
    assert list(AUTOML_REQUIREMENTS[:len(extra)]) == extra
    sklearn = next(r for r in pyproject["dependencies"] if r.startswith("scikit-learn"))
    lines = (project / "docker" / "automl" / "requirements.txt").read_text().splitlines()
    assert [line for line in lines if not line.startswith("#")] == [*extra, sklearn, "pyarrow>=4"]
    wheelhouse = (ROOT / "scripts" / "wheelhouse").read_text()
    assert "automl]" in wheelhouse  # the offline build finds the extra's wheels


def test_the_versions_come_back_from_the_log_and_the_endpoint_serves_them_on_the_automl_image(
        captured: Captured) -> None:
    assert captured.exports["wine-automl.models"] == {"wine-clf": 1}
    (replica,) = [r for r in captured.of_type(CONTAINER) if r.name.startswith("wine-best")]
    (runner_image,) = [r for r in captured.of_type(IMAGE) if r.name == "mlspec-automl"]
    assert replica.inputs["image"] == runner_image.inputs["imageName"]


def test_a_failed_search_fails_the_update_with_its_last_lines(project: Path) -> None:
    with pytest.raises(Exception) as failure:
        run_program(project, {}, mocks=RegistryMocks(exit_code=1))
    error: BaseException | None = failure.value
    while error is not None and not isinstance(error, JobFailed):
        error = error.__cause__
    assert "training job 'wine-automl' exited with code 1" in str(error or failure.value)


def test_an_unchanged_job_keeps_its_container_and_a_changed_one_gets_another(tmp_path: Path) -> None:
    def name(project: Path) -> str:
        return str(_runner(run_program(project, {}, mocks=RegistryMocks()))[0]["name"])

    def edit(spec: Path) -> None:
        path = spec / "mlspec.yaml"
        path.write_text(path.read_text().replace("max_trials: 400", "max_trials: 300"))

    first = name(compile_copy(tmp_path / "a", "automl"))
    assert name(compile_copy(tmp_path / "b", "automl")) == first
    assert name(compile_copy(tmp_path / "c", "automl", edit)) != first


def test_the_job_takes_a_lane_of_its_cluster_per_search(tmp_path: Path) -> None:
    spec = tmp_path / "examples" / "automl"
    compile_copy(tmp_path, "automl")
    path = spec / "mlspec.yaml"
    path.write_text(path.read_text() + """
---
kind: Environment
name: py
---
kind: Job
name: zz
command: python -c "print(1)"
environment: py
""")
    jobs = {job.name: job for job in build_program(load_graph([spec]), tmp_path / "out").jobs}
    assert jobs["wine-automl"].after == () and jobs["zz"].after == ("job_wine_automl",)


def test_the_automl_image_installs_lightgbms_openmp_runtime_where_the_base_image_lacks_it(project: Path) -> None:
    dockerfile = (project / "docker" / "automl" / "Dockerfile").read_text()
    final = dockerfile.rsplit("FROM ${RUNTIME_IMAGE}", 1)[1]  # the image the searches run in, not the build stage
    assert "for package in libgomp1; do" in final and 'dpkg -s "$package"' in final and "apt-get install" in final
    assert final.index("USER root") < final.index("apt-get install") < final.rindex("USER ")
    assert "libgomp1" in (ROOT / "scripts" / "docker-base-image").read_text()  # the offline base image has it

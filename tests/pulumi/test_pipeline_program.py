"""A pipeline in the Docker program, under Pulumi's mocks: one run-once container named by the pipeline's content
hash runs the pipeline runner, its step results on the workspace volume, sized for the steps it runs at once; the
contract holds every step with its paths in the image; the registered versions come back from its log, and a failed
pipeline fails the update with its last lines."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from mlspec.pulumi.containers import STORAGE
from mlspec.pulumi.job import JobFailed
from mlspec.pulumi.pipeline import PIPELINERUN
from mlspec.runtime.pipeline.contract import CONTAINER_FOLDER, PipelineRun
from tests.pulumi.conftest import CONTAINER, ROOT
from tests.pulumi.harness import Captured, container_files, run_program
from tests.pulumi.pipeline_spec import PipelineMocks, compile_pipeline

FILES = "/opt/mlspec-job/files"
EDIT, EDITED = "args = parser.parse_args()\n", "args = parser.parse_args()\nprint('edited')\n"  # train.py


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_pipeline(tmp_path_factory.mktemp("pipeline"))


@pytest.fixture(scope="module")
def captured(project: Path) -> Captured:
    return run_program(project, {}, mocks=PipelineMocks())


def _pipeline_container(captured: Captured) -> tuple[dict[str, Any], PipelineRun]:
    (container,) = [r for r in captured.of_type(CONTAINER) if r.name == "wine"]
    return container.inputs, PipelineRun.model_validate_json(container_files(container.inputs)[PIPELINERUN])


def test_the_runner_runs_once_named_by_the_pipelines_hash_with_its_steps_on_the_workspace_volume(
        captured: Captured) -> None:
    inputs, run = _pipeline_container(captured)
    assert inputs["name"] == f"pipeline-demo-job-wine-{run.content_hash[:12]}"  # unchanged: not run again
    assert inputs["command"][-4:] == ["python", "-m", "mlspec.runtime.pipeline", PIPELINERUN]
    assert inputs["restart"] == "no" and inputs["attach"] is True and inputs["mustRun"] is False
    (volume,) = inputs["volumes"]
    assert volume["volumeName"] == "pipeline-demo-storage" and volume["containerPath"] == STORAGE
    # Not a folder per content hash: a changed pipeline's container finds its unchanged steps' results there.
    assert run.folder == f"{CONTAINER_FOLDER}/wine" and run.folder.startswith(f"{STORAGE}/")
    # max_nodes 2 and three steps: two at once, the compute's size twice over.
    assert run.capacity == {"compute/cpu": 2}
    assert inputs["memory"] == 2 * 2048 and inputs["cpus"] == "2"


def test_the_contract_holds_every_step_with_its_paths_in_the_image(captured: Captured) -> None:
    _, run = _pipeline_container(captured)
    steps = {s.name: s for s in run.steps}
    assert list(steps) == ["prepare", "train", "evaluate"]  # dependency order
    assert run.tracking_uri == "http://mlflow:5000" and run.experiment == "wine-pipeline"
    assert all(s.template.tracking_uri == "http://mlflow:5000" for s in run.steps)
    prepare, train, evaluate = steps["prepare"], steps["train"], steps["evaluate"]
    assert prepare.template.code == f"{FILES}/src/prep" and train.template.code == f"{FILES}/src/train"
    assert prepare.template.inputs["test_size"].value == 0.25  # the pipeline's input, bound
    assert train.reads == {"data": ("prepare", "data")} and train.template.inputs["C"].value == 1.0
    assert evaluate.deps == ["prepare", "train"]
    model = train.template.outputs["model"]
    assert (model.register_as, model.flavor, model.type) == ("wine-clf", "sklearn", "model")
    assert not run.continue_on_step_failure and {s.compute for s in run.steps} == {"compute/cpu"}


def test_the_registered_versions_come_back_from_the_log(captured: Captured) -> None:
    assert captured.exports["wine.models"] == {"wine-clf": 1}


def test_a_failed_pipeline_fails_the_update_with_its_last_lines(project: Path) -> None:
    with pytest.raises(Exception) as failure:
        run_program(project, {}, mocks=PipelineMocks(exit_code=1))
    error = failure.value
    while not isinstance(error, JobFailed) and error.__cause__ is not None:
        error = error.__cause__
    assert "step train failed: boom" in str(failure.value) or "step train failed: boom" in str(error)


def test_an_unchanged_pipeline_keeps_its_container_and_a_changed_step_gets_another(tmp_path: Path) -> None:
    def contract(project: Path) -> tuple[str, PipelineRun]:
        inputs, run = _pipeline_container(run_program(project, {}, mocks=PipelineMocks()))
        return str(inputs["name"]), run

    first, run = contract(compile_pipeline(tmp_path / "a"))
    assert contract(compile_pipeline(tmp_path / "b"))[0] == first
    changed, edited = contract(compile_pipeline(tmp_path / "c", EDIT, EDITED, "src/train/train.py"))
    assert changed != first  # a new container, whose runner reuses prepare: its static hash is unchanged
    hashes = {s.name: s.static_hash for s in run.steps}
    assert {s.name: s.static_hash == hashes[s.name] for s in edited.steps} == \
        {"prepare": True, "train": False, "evaluate": True}


def test_on_an_attached_host_the_steps_are_on_a_volume_of_the_pipelines_there_and_read_the_data_in_the_image(
        tmp_path: Path) -> None:
    from mlspec.backends.pulumi import compile_project
    from mlspec.graph import load_graph
    from tests.docker.attached_spec import attached_spec

    spec = attached_spec(tmp_path / "spec")
    (spec / "mlspec.yaml").write_text((spec / "mlspec.yaml").read_text() + """
---
kind: Job
name: flow
type: pipeline
settings: {default_compute: edge}
outputs: {model: {type: model, register_as: iris-flow, flavor: sklearn}}
jobs:
  fit:
    code: src/
    command: python train.py --data ${{inputs.data}} --algo logistic --model-dir ${{outputs.model}}
    inputs: {data: data:iris}
    outputs: {model: "${{parent.outputs.model}}"}
  tune:
    type: sweep
    trial:
      code: src/
      command: >-
        python train.py --data ${{inputs.data}} --algo logistic --C ${{search_space.C}}
        --model-dir ${{outputs.model}}
    inputs: {data: data:iris}
    outputs: {model: {type: model}}
    search_space: {C: {type: choice, values: [0.1, 1.0]}}
    sampling_algorithm: grid
    objective: {primary_metric: accuracy, goal: maximize}
    limits: {max_total_trials: 2}
""")
    compile_project(load_graph([spec]), tmp_path / "stack")
    assert "optuna>=4" in (tmp_path / "stack" / "docker" / "environment-sklearn" / "requirements.txt").read_text()
    captured = run_program(tmp_path / "stack", {"publishAddress": "0.0.0.0"}, mocks=PipelineMocks())
    (provider,) = captured.of_type("pulumi:providers:docker")
    (volume,) = [r for r in captured.of_type("docker:index/volume:Volume") if r.name == "flow-pipelines"]
    assert volume.inputs["name"] == "edge-demo-pipeline-flow" and volume.provider.startswith(provider.urn)
    (container,) = [r for r in captured.of_type(CONTAINER) if r.name == "flow"]
    run = PipelineRun.model_validate_json(container_files(container.inputs)[PIPELINERUN])
    assert container.inputs["volumes"] == [{"volumeName": "edge-demo-pipeline-flow", "containerPath": STORAGE,
                                            "readOnly": False}]
    assert run.tracking_uri == "http://mlflow.example.com:5000"
    steps = {s.name: s for s in run.steps}
    assert steps["fit"].template.inputs["data"].path == f"{FILES}/data/iris.csv"  # the data is in the image
    assert steps["tune"].sweep is not None and steps["tune"].sweep.sampling_algorithm == "grid"
    assert container.inputs["memory"] == 1024  # an attached host runs one step at a time: the compute's size once
    assert captured.exports["flow.models"] == {"iris-flow": 1}


def test_an_endpoint_serves_the_pipelines_model_in_its_image_at_the_version_it_registered(tmp_path: Path) -> None:
    from mlspec.backends.pulumi.model import build_program
    from mlspec.graph import load_graph

    shutil.copytree(ROOT / "examples" / "pipeline", tmp_path / "pipeline")
    spec = tmp_path / "pipeline" / "mlspec.yaml"
    text = spec.read_text().replace("defaults:\n  environment: sklearn\n", "")  # the steps name it instead
    text = text.replace("    code: src/", "    environment: sklearn\n    code: src/")
    spec.write_text(text + """---
kind: Endpoint
name: wine
type: online
deployments:
  blue: {model: wine-clf@latest, compute: cpu}
traffic: {blue: 100}
""")
    program = build_program(load_graph([spec.parent]), tmp_path / "out")
    ((deployment,),) = [e.deployments for e in program.endpoints]
    (job,) = program.jobs
    assert (deployment.job, deployment.environment) == (job.var, job.environment) == ("job_wine", "env_sklearn")

"""A sweep in the Docker program, under Pulumi's mocks: one run-once container named by the sweep's content hash runs
the sweep's controller with its study on the workspace volume, sized for the trials it runs at once; the best
trial's model versions come back from its log, and a failed sweep fails the update with its last lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlspec.pulumi.containers import STORAGE
from mlspec.pulumi.job import JobFailed
from mlspec.pulumi.sweep import SWEEPRUN
from mlspec.runtime.sweep.contract import SweepRun
from tests.pulumi.conftest import CONTAINER
from tests.pulumi.harness import Captured, container_files, run_program
from tests.pulumi.sweep_spec import SweepMocks, compile_sweep


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_sweep(tmp_path_factory.mktemp("sweep"))


@pytest.fixture(scope="module")
def captured(project: Path) -> Captured:
    return run_program(project, {}, mocks=SweepMocks())


def _sweep_container(captured: Captured) -> tuple[dict, SweepRun]:  # type: ignore[type-arg]
    (container,) = [r for r in captured.of_type(CONTAINER) if r.name == "tune"]
    files = container_files(container.inputs)
    return container.inputs, SweepRun.model_validate_json(files[SWEEPRUN])


def test_the_controller_runs_once_named_by_the_sweeps_hash_with_its_study_on_the_workspace_volume(
        captured: Captured) -> None:
    inputs, run = _sweep_container(captured)
    content_hash = run.template.content_hash
    assert inputs["name"] == f"sweep-demo-job-tune-{content_hash[:12]}"  # as a command job's: unchanged, not re-run
    assert inputs["command"][-4:] == ["python", "-m", "mlspec.runtime.sweep", SWEEPRUN]
    assert inputs["restart"] == "no" and inputs["attach"] is True and inputs["mustRun"] is False
    # The study and the trials' outputs on the workspace volume, in a folder of this content hash: a container run
    # again (`pulumi up --replace`) resumes the study.
    (volume,) = inputs["volumes"]
    assert volume["volumeName"] == "sweep-demo-storage" and volume["containerPath"] == STORAGE
    assert run.folder == f"{STORAGE}/sweeps/tune/{content_hash[:16]}"
    assert run.seed == int(content_hash[:8], 16)
    # Two trials at once: the compute's size twice over, as two of its nodes.
    assert inputs["memory"] == 2 * 2048 and inputs["cpus"] == "2"


def test_the_contract_carries_every_sweep_setting_and_the_trials_template(captured: Captured) -> None:
    _, run = _sweep_container(captured)
    sweep = run.sweep
    assert sweep.name == "tune" and sweep.sampling_algorithm == "bayesian"
    assert sweep.objective.primary_metric == "val_accuracy" and sweep.objective.goal == "maximize"
    assert (sweep.limits.max_total_trials, sweep.limits.max_concurrent_trials, sweep.limits.trial_timeout) == \
        (12, 2, 300.0)
    assert sweep.early_termination is not None and sweep.early_termination.policy == "bandit"
    assert (sweep.early_termination.slack_factor, sweep.early_termination.evaluation_interval,
            sweep.early_termination.delay_evaluation) == (0.05, 2, 4)
    assert set(sweep.search_space) == {"alpha", "loss"}
    template = run.template
    assert "${{search_space.alpha}}" in template.command and "${{inputs.epochs}}" in template.command
    assert template.code == "/opt/mlspec-job/files/src"
    assert template.inputs["epochs"].value == 8
    assert template.outputs["model"].register_as == "digits-sgd"
    assert template.experiment == "digits-sweep" and template.tracking_uri == "http://mlflow:5000"
    assert template.timeout is None  # each trial's own limit is limits.trial_timeout


def test_the_best_trials_versions_come_back_from_the_log(captured: Captured) -> None:
    assert captured.exports["tune.models"] == {"digits-sgd": 1}


def test_the_trials_environment_gets_optuna(project: Path) -> None:
    requirements = (project / "docker" / "environment-sklearn" / "requirements.txt").read_text().split()
    assert "optuna>=4" in requirements and "scikit-learn>=1.4" in requirements


def test_a_failed_sweep_fails_the_update_with_its_last_lines(project: Path) -> None:
    with pytest.raises(Exception) as failure:
        run_program(project, {}, mocks=SweepMocks(exit_code=1))
    error = failure.value
    while not isinstance(error, JobFailed) and error.__cause__ is not None:
        error = error.__cause__
    assert "no trial succeeded" in str(failure.value) or "no trial succeeded" in str(error)


def test_an_unchanged_sweep_keeps_its_container_and_a_changed_one_gets_another(tmp_path: Path) -> None:
    def name(project: Path) -> str:
        captured = run_program(project, {}, mocks=SweepMocks())
        return str(_sweep_container(captured)[0]["name"])

    first = name(compile_sweep(tmp_path / "a"))
    assert name(compile_sweep(tmp_path / "b")) == first
    assert name(compile_sweep(tmp_path / "c", "max_total_trials: 12", "max_total_trials: 10")) != first


def test_on_an_attached_host_the_study_is_on_a_volume_of_the_sweeps_there(tmp_path: Path) -> None:
    from mlspec.backends.pulumi import compile_project
    from mlspec.graph import load_graph
    from tests.docker.attached_spec import attached_spec

    spec = attached_spec(tmp_path / "spec")
    (spec / "mlspec.yaml").write_text((spec / "mlspec.yaml").read_text() + """
---
kind: Job
name: tune
type: sweep
compute: edge
trial:
  code: src/
  command: >-
    python train.py --data ${{inputs.data}} --algo logistic --C ${{search_space.C}}
    --model-dir ${{outputs.model}}
inputs: {data: data:iris}
outputs:
  model: {type: model, register_as: iris-tuned, flavor: sklearn}
search_space:
  C: {type: choice, values: [0.1, 1.0]}
sampling_algorithm: grid
objective: {primary_metric: accuracy, goal: maximize}
limits: {max_total_trials: 2}
""")
    compile_project(load_graph([spec]), tmp_path / "stack")
    captured = run_program(tmp_path / "stack", {"publishAddress": "0.0.0.0"}, mocks=SweepMocks())
    (provider,) = captured.of_type("pulumi:providers:docker")
    (volume,) = [r for r in captured.of_type("docker:index/volume:Volume") if r.name == "tune-sweeps"]
    assert volume.inputs["name"] == "edge-demo-sweep-tune" and volume.provider.startswith(provider.urn)
    inputs, run = _sweep_container(captured)
    assert inputs["volumes"] == [{"volumeName": "edge-demo-sweep-tune", "containerPath": STORAGE, "readOnly": False}]
    assert run.template.tracking_uri == "http://mlflow.example.com:5000"
    assert inputs["memory"] == 1024  # one trial at a time: the compute's size once


LATER_JOB = """
---
kind: Job
name: {name}
code: src/
command: python train.py --alpha 0.001 --loss hinge --epochs 2 --model-dir ${{{{outputs.model}}}}
outputs: {{model: {{type: model}}}}
"""


def test_a_sweep_takes_a_lane_of_its_cluster_per_trial_it_runs_at_once(tmp_path: Path) -> None:
    from mlspec.backends.pulumi.model import build_program
    from mlspec.graph import load_graph

    project = compile_sweep(tmp_path, "experiment_name: digits-sweep\n", "experiment_name: digits-sweep\n" + "".join(
        LATER_JOB.format(name=name) for name in ("aa", "zz1", "zz2")))
    spec = tmp_path / "examples" / "sweep"
    jobs = {job.name: job for job in build_program(load_graph([spec]), tmp_path / "out").jobs}
    assert list(jobs) == ["aa", "tune", "zz1", "zz2"]  # program order
    # max_nodes 2: the sweep of two trials at once waits for the job ahead of it, and takes both lanes: the next two
    # jobs wait for it.
    assert jobs["aa"].after == ()
    assert jobs["tune"].after == ("job_aa",)
    assert jobs["zz1"].after == ("job_tune",) and jobs["zz2"].after == ("job_tune",)
    program = (project / "__main__.py").read_text()
    assert program.count("after=[job_tune],") == 2 and "after=[job_aa]," in program

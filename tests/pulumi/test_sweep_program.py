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

"""The pipeline runner's contract: a contract it cannot read is an exit code 2 with a message naming every problem,
not a traceback; a contract reports to the tracking server a target gives it, every step included."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlspec.runtime.jobrun import JobRun
from mlspec.runtime.pipeline.__main__ import main
from mlspec.runtime.pipeline.contract import PipelineRun, StepRun


def test_an_unreadable_contract_is_an_error_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    contract = tmp_path / "pipelinerun.json"
    contract.write_text('{"name": "flow", "steps": [], "folder": "relative"}')
    assert main([str(contract)]) == 2
    error = capsys.readouterr().err
    assert "is not a valid pipeline run" in error and "folder" in error and "steps" in error
    assert "experiment" in error and "Traceback" not in error
    assert main([str(tmp_path / "missing.json")]) == 2
    assert "cannot read pipeline run file" in capsys.readouterr().err


def test_a_target_sets_the_tracking_server_of_the_run_and_of_every_step() -> None:
    template = JobRun(job="flow.a", experiment="e", tracking_uri="", artifact_location="mlflow-artifacts:/e",
                      command="echo a", workdir="/mlspec/pipelines/flow/steps/a/pending")
    run = PipelineRun(name="flow", content_hash="0" * 64, folder="/mlspec/pipelines/flow", experiment="e",
                      tracking_uri="", artifact_location="mlflow-artifacts:/e", capacity={"compute/cpu": 1},
                      steps=[StepRun(name=n, template=template, static_hash=n * 64, compute="compute/cpu")
                             for n in "ab"])
    tracked = PipelineRun.model_validate_json(run.tracked_by("http://mlflow:5000").model_dump_json())
    assert tracked.tracking_uri == "http://mlflow:5000"
    assert [s.template.tracking_uri for s in tracked.steps] == ["http://mlflow:5000"] * 2
    assert tracked.steps[0].slots == 1 and run.steps[0].template.tracking_uri == ""  # a copy: the run is unchanged

"""The sweep controller's contract: the settings a compiled program carries give back the sweep, and a contract the
controller cannot read is an exit code 2 with a message naming every problem, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlspec.runtime.sweep.__main__ import main
from mlspec.runtime.sweep.contract import sweep_of, sweep_settings
from mlspec.spec.sweep import SweepJob

SWEEP = {"name": "tune", "type": "sweep", "trial": {"command": "python t.py --x ${{search_space.x}}"},
         "search_space": {"x": {"type": "choice", "values": [True, False, 3, "a"]},
                          "lr": {"type": "loguniform", "min_value": -7, "max_value": 0}},
         "sampling_algorithm": "random", "objective": {"primary_metric": "acc", "goal": "minimize"},
         "limits": {"max_total_trials": 4, "max_concurrent_trials": 2, "trial_timeout": 60, "timeout": 600},
         "early_termination": {"policy": "truncation", "truncation_percentage": 20, "delay_evaluation": 3}}


def test_the_settings_give_back_the_sweep_the_spec_declared() -> None:
    sweep = SweepJob.model_validate(SWEEP)
    settings = sweep_settings(sweep)
    assert sweep_settings(SweepJob.model_validate(SWEEP)) == settings  # stable text: the same program bytes
    again = sweep_of("tune", sweep.trial.command, settings)
    for field in ("search_space", "sampling_algorithm", "objective", "limits", "early_termination"):
        assert getattr(again, field) == getattr(sweep, field), field
    assert again.search_space["x"].values == [True, False, 3, "a"]  # booleans stay booleans


def test_an_unreadable_contract_is_an_error_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    contract = tmp_path / "sweeprun.json"
    contract.write_text('{"sweep": {"name": "tune"}, "folder": "relative", "seed": -1}')
    assert main([str(contract)]) == 2
    error = capsys.readouterr().err
    assert "is not a valid sweep run" in error and "folder" in error and "template" in error and "seed" in error
    assert "Traceback" not in error
    assert main([str(tmp_path / "missing.json")]) == 2
    assert "cannot read sweep run file" in capsys.readouterr().err

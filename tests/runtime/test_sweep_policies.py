"""Early-termination policies as pure functions, the search space in Optuna's terms, and the trial's command."""

from __future__ import annotations

import math

import pytest

from mlspec.runtime.sweep.policies import bandit, median_stopping, should_stop, truncation, value_at
from mlspec.runtime.sweep.runner import substitute_search_space
from mlspec.runtime.sweep.space import distributions, total_trials, trial_values
from mlspec.spec.sweep import EarlyTermination, SweepJob


def _policy(**fields: object) -> EarlyTermination:
    return EarlyTermination.model_validate(fields)


def test_bandit_stops_a_trial_outside_the_slack_of_the_best() -> None:
    assert bandit(0.80, [0.95], 0.1, "maximize") is not None  # 0.80 < 0.95 / 1.1 = 0.864
    assert bandit(0.90, [0.95], 0.1, "maximize") is None
    assert bandit(1.20, [1.0], 0.1, "minimize") is not None  # 1.2 > 1.0 * 1.1
    assert bandit(1.05, [1.0], 0.1, "minimize") is None
    assert bandit(0.1, [], 0.1, "maximize") is None  # nothing to compare with


def test_median_stopping_compares_the_best_value_with_the_median_of_running_averages() -> None:
    assert median_stopping(0.5, [0.7, 0.8, 0.9], "maximize") is not None
    assert median_stopping(0.85, [0.7, 0.8, 0.9], "maximize") is None
    assert median_stopping(0.5, [0.7, 0.8, 0.9], "minimize") is None
    assert median_stopping(0.95, [0.7, 0.8, 0.9], "minimize") is not None


def test_truncation_stops_the_worst_share() -> None:
    others = [0.9, 0.8, 0.7, 0.6]
    assert truncation(0.5, others, 20, "maximize") is not None  # the worst of 5: the bottom 20%
    assert truncation(0.65, others, 20, "maximize") is None  # second worst: kept at 20%
    assert truncation(0.65, others, 40, "maximize") is not None
    assert truncation(0.5, others, 20, "minimize") is None  # the best when lower is better
    assert truncation(0.5, [], 50, "maximize") is None


def test_should_stop_only_at_evaluation_steps_after_the_delay() -> None:
    policy = _policy(policy="bandit", slack_factor=0.1, evaluation_interval=2, delay_evaluation=4)
    poor = [(s, 0.2) for s in range(1, 9)]
    good = {1: [(s, 0.9) for s in range(1, 9)]}
    assert [s for s in range(1, 9) if should_stop(policy, "maximize", poor, good, s)] == [4, 6, 8]
    assert should_stop(policy, "maximize", [(s, 0.88) for s in range(1, 9)], good, 4) is None


def test_should_stop_compares_only_with_trials_that_reached_the_step() -> None:
    policy = _policy(policy="truncation", truncation_percentage=50)
    poor = [(1, 0.1), (2, 0.1), (3, 0.1)]
    assert should_stop(policy, "maximize", poor, {1: [(1, 0.9)]}, 3) is None  # the other is still at step 1
    assert "truncation" in (should_stop(policy, "maximize", poor, {1: [(1, 0.9), (3, 0.9)]}, 3) or "")


def test_median_stopping_policy_uses_running_averages() -> None:
    policy = _policy(policy="median_stopping")
    others = {1: [(1, 0.9), (2, 0.9)], 2: [(1, 0.7), (2, 0.9)]}  # averages 0.9 and 0.8: median 0.85
    assert should_stop(policy, "maximize", [(1, 0.5), (2, 0.8)], others, 2) is not None
    assert should_stop(policy, "maximize", [(1, 0.5), (2, 0.86)], others, 2) is None


def test_value_at_takes_the_last_value_logged_up_to_the_step() -> None:
    assert value_at([(3, 0.3), (1, 0.1)], 2) == 0.1
    assert value_at([(3, 0.3), (1, 0.1)], 5) == 0.3
    assert value_at([(3, 0.3)], 2) is None


def test_policy_settings_belong_to_their_policy() -> None:
    with pytest.raises(ValueError, match="needs slack_factor"):
        _policy(policy="bandit")
    with pytest.raises(ValueError, match="needs truncation_percentage"):
        _policy(policy="truncation")
    with pytest.raises(ValueError, match="setting of the bandit policy"):
        _policy(policy="median_stopping", slack_factor=0.2)


def _sweep(space: dict[str, object], algorithm: str = "random", trials: int = 10) -> SweepJob:
    return SweepJob.model_validate({
        "name": "s", "type": "sweep", "trial": {"command": "python t.py"}, "search_space": space,
        "sampling_algorithm": algorithm, "objective": {"primary_metric": "acc", "goal": "maximize"},
        "limits": {"max_total_trials": trials}})


def test_search_space_maps_onto_optuna_distributions() -> None:
    sweep = _sweep({"lr": {"type": "loguniform", "min_value": -7, "max_value": 0},
                    "n": {"type": "randint", "upper": 5},
                    "w": {"type": "normal", "mu": 10, "sigma": 2},
                    "k": {"type": "choice", "values": ["a", 1, True]}})
    found = distributions(sweep)
    assert math.isclose(found["lr"].low, math.exp(-7)) and found["lr"].high == 1.0 and found["lr"].log  # type: ignore[attr-defined]
    assert (found["n"].low, found["n"].high) == (0, 4)  # type: ignore[attr-defined]
    values = trial_values(sweep, {"lr": 0.01, "n": 3, "w": 0.5, "k": "a"})
    assert values == {"lr": 0.01, "n": 3, "w": 10.0, "k": "a"}  # the normal's median quantile is mu
    assert trial_values(sweep, {"lr": 0.01, "n": 3, "w": 0.8413447, "k": 1})["w"] == pytest.approx(12.0, abs=1e-4)


def test_a_grid_runs_at_most_its_size() -> None:
    space = {"a": {"type": "choice", "values": [1, 2, 3]}, "b": {"type": "choice", "values": ["x", "y"]}}
    assert total_trials(_sweep(space, "grid", trials=100)) == 6
    assert total_trials(_sweep(space, "grid", trials=4)) == 4
    assert total_trials(_sweep(space, "random", trials=100)) == 100


def test_search_space_values_are_substituted_quoted_and_other_placeholders_kept() -> None:
    command = "python t.py --lr ${{search_space.lr}} --name ${{ search_space.name }} --out ${{outputs.model}}"
    assert substitute_search_space(command, {"lr": 0.001, "name": "a b"}) == \
        "python t.py --lr 0.001 --name 'a b' --out ${{outputs.model}}"
    assert substitute_search_space("x ${{search_space.flag}}", {"flag": True}) == "x true"

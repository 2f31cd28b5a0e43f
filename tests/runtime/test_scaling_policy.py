"""The autoscaling policy: measured load over time to a replica count, with Knative's clamping and delays."""

from __future__ import annotations

import pytest

from mlspec.runtime.scaling import Load, ScalingPolicy, ScalingSettings
from mlspec.spec.endpoint import Autoscale

TICK = 0.5


def settings(**overrides: object) -> ScalingSettings:
    values: dict[str, object] = {"min_instances": 1, "max_instances": 4, "metric": "concurrency", "target": 8.0,
                                 "window": 2.0, "scale_up_delay": 0.0, "scale_down_delay": 5.0}
    values.update(overrides)
    return ScalingSettings(**values)  # type: ignore[arg-type]


def run(policy: ScalingPolicy, start: float, seconds: float, load: Load) -> list[int]:
    """Observe the same load every tick for `seconds`; the decisions, one per tick."""
    decisions = []
    ticks = round(seconds / TICK)
    for step in range(1, ticks + 1):
        now = start + step * TICK
        policy.observe(now, load)
        decisions.append(policy.decide(now))
    return decisions


def test_desired_is_load_over_target_rounded_up_and_clamped() -> None:
    policy = ScalingPolicy(settings(), current=1)
    assert run(policy, 0, 3, Load(in_flight=17))[-1] == 3  # ceil(17 / 8)
    assert run(policy, 3, 3, Load(in_flight=200))[-1] == 4  # clamped to max
    assert ScalingPolicy(settings(), current=9).current == 4


def test_scale_up_waits_for_sustained_need() -> None:
    policy = ScalingPolicy(settings(scale_up_delay=2.0), current=1)
    decisions = run(policy, 0, 4, Load(in_flight=32))
    assert decisions[:3] == [1, 1, 1]  # under 2 s of need: nothing yet
    assert decisions[-1] == 4
    brief = ScalingPolicy(settings(scale_up_delay=2.0), current=1)
    run(brief, 0, 1, Load(in_flight=32))
    assert run(brief, 1, 4, Load())[-1] == 1  # a burst shorter than the delay never scaled


def test_scale_down_only_after_the_delay_and_to_the_highest_recent_need() -> None:
    policy = ScalingPolicy(settings(), current=1)
    run(policy, 0, 3, Load(in_flight=32))
    assert policy.current == 4
    decisions = run(policy, 3, 10, Load(in_flight=9))  # needs 2
    assert decisions[:9] == [4] * 9  # 5 s of scale_down_delay (the window's 32s still count early on)
    assert decisions[-1] == 2
    assert run(policy, 13, 10, Load())[-1] == 1  # idle: back to min_instances


def test_a_short_lull_keeps_the_replicas() -> None:
    policy = ScalingPolicy(settings(), current=1)
    run(policy, 0, 3, Load(in_flight=32))
    run(policy, 3, 3, Load())
    assert run(policy, 6, 3, Load(in_flight=32)) == [4] * 6


def test_scale_to_zero_and_back_on_a_held_request() -> None:
    policy = ScalingPolicy(settings(min_instances=0, scale_up_delay=10.0), current=0)
    assert run(policy, 0, 3, Load()) == [0] * 6
    policy.observe(3.1, Load(held=1))
    assert policy.decide(3.1) == 1  # at once, although scale_up_delay is 10 s
    run(policy, 3.1, 3, Load(in_flight=1))
    assert policy.current == 1
    assert run(policy, 6.1, 10, Load())[-1] == 0  # idle past window + scale_down_delay


def test_rps_target_from_the_request_counter() -> None:
    policy = ScalingPolicy(settings(metric="rps", target=100.0), current=1)
    total = 0
    for step in range(1, 9):
        total += 150  # 300 requests per second
        policy.observe(step * TICK, Load(requests_total=total))
    assert policy.decide(4.0) == 3
    policy.observe(4.5, Load(requests_total=5))  # the gateway restarted: no negative rate
    assert policy.average() > 0


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, ("concurrency", pytest.approx(44.8))),  # 70% of the default 64 per replica
    ({"target_rps": 50}, ("rps", 50.0)),
    ({"target_concurrency": 4}, ("concurrency", 4.0)),
])
def test_spec_target(fields: dict[str, object], expected: tuple[str, float]) -> None:
    assert Autoscale.model_validate({"min_instances": 0, "max_instances": 4, **fields}).target(64) == expected
    assert Autoscale.model_validate({"max_instances": 4}).target(500) == ("concurrency", pytest.approx(70.0))


def test_spec_refuses_two_targets_and_old_names() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not both"):
        Autoscale.model_validate({"max_instances": 2, "target_rps": 5, "target_concurrency": 5})
    with pytest.raises(ValidationError):
        Autoscale.model_validate({"max_instances": 2, "target_utilization": 70})


def test_a_long_pause_between_readings_does_not_drop_a_replica_at_once() -> None:
    """A scaling step blocks the readings for seconds: the need recorded before the pause still holds after it."""
    policy = ScalingPolicy(settings(min_instances=0, scale_down_delay=3.0), current=0)
    run(policy, 0, 4, Load())
    policy.observe(4.1, Load(held=1))
    assert policy.decide(4.1) == 1
    policy.observe(9.0, Load())  # 5 s later (the replica started meanwhile), idle again
    assert policy.decide(9.0) == 1  # the 1 was in force until now: scale_down_delay counts from here
    assert run(policy, 9.0, 2.5, Load())[-1] == 1
    assert run(policy, 11.5, 1.0, Load())[-1] == 0

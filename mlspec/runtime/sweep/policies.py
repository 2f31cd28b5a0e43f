"""Early termination as pure functions: given the trials' metric histories, whether to stop one, and why."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Literal

from mlspec.spec.sweep import EarlyTermination

Goal = Literal["maximize", "minimize"]
# (step, value) pairs as a trial logged them with mlflow.log_metric(..., step=), in any order.
History = Sequence[tuple[int, float]]


def value_at(history: History, step: int) -> float | None:
    """The value last logged at or before `step` (a trial that skipped a step is compared by its latest)."""
    earlier = [(s, v) for s, v in history if s <= step]
    return max(earlier, key=lambda item: item[0])[1] if earlier else None


def running_average(history: History, step: int) -> float | None:
    values = [v for s, v in history if s <= step]
    return sum(values) / len(values) if values else None


def best_so_far(history: History, step: int, goal: Goal) -> float | None:
    values = [v for s, v in history if s <= step]
    if not values:
        return None
    return max(values) if goal == "maximize" else min(values)


def evaluation_steps(policy: EarlyTermination, history: History) -> list[int]:
    """The steps of a history at which the policy applies: multiples of evaluation_interval from delay_evaluation."""
    return sorted({s for s, _ in history if s >= policy.delay_evaluation and s % policy.evaluation_interval == 0})


def _better(a: float, b: float, goal: Goal) -> bool:
    return a > b if goal == "maximize" else a < b


def bandit(value: float, others: Sequence[float], slack_factor: float, goal: Goal) -> str | None:
    """Stop a trial not within slack_factor of the best trial: below best / (1 + slack) when maximizing, above
    best * (1 + slack) when minimizing."""
    if not others:
        return None
    best = max([value, *others]) if goal == "maximize" else min([value, *others])
    if goal == "maximize":
        limit = best / (1 + slack_factor)
        poor = value < limit
    else:
        limit = best * (1 + slack_factor)
        poor = value > limit
    if not poor:
        return None
    return (f"bandit: {value:.6g} is not within slack_factor {slack_factor:g} of the best trial's {best:.6g} "
            f"(limit {limit:.6g})")


def median_stopping(best: float, others_averages: Sequence[float], goal: Goal) -> str | None:
    """Stop a trial whose best value so far is worse than the median of the other trials' running averages."""
    if not others_averages:
        return None
    median = statistics.median(others_averages)
    if not _better(median, best, goal):
        return None
    return f"median_stopping: its best value {best:.6g} is worse than the median {median:.6g} of the running averages"


def truncation(value: float, others: Sequence[float], percentage: int, goal: Goal) -> str | None:
    """Stop a trial among the worst `percentage` percent of the trials that reached this step (itself included)."""
    if not others:
        return None
    count = len(others) + 1
    better = sum(_better(other, value, goal) for other in others)
    if better < count * (1 - percentage / 100):
        return None
    return f"truncation: {value:.6g} is among the worst {percentage}% of the {count} trials at this step"


def should_stop(policy: EarlyTermination, goal: Goal, history: History, others: Mapping[int, History],
                step: int) -> str | None:
    """Why the policy stops a trial at `step` (an evaluation step it reached), given the other trials' histories;
    None: it goes on. Only other trials that reached `step` take part."""
    if step < policy.delay_evaluation or step % policy.evaluation_interval:
        return None
    reached = {n: h for n, h in others.items() if any(s >= step for s, _ in h)}
    if policy.policy == "median_stopping":
        best = best_so_far(history, step, goal)
        averages = [a for h in reached.values() if (a := running_average(h, step)) is not None]
        reason = median_stopping(best, averages, goal) if best is not None else None
    else:
        value = value_at(history, step)
        values = [v for h in reached.values() if (v := value_at(h, step)) is not None]
        if value is None:
            return None
        if policy.policy == "bandit":
            assert policy.slack_factor is not None  # the spec requires it for bandit
            reason = bandit(value, values, policy.slack_factor, goal)
        else:
            assert policy.truncation_percentage is not None  # the spec requires it for truncation
            reason = truncation(value, values, policy.truncation_percentage, goal)
    return f"{reason} (step {step})" if reason else None

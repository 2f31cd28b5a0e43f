"""A sweep's search space in Optuna's terms: a distribution per parameter, the sampler, and the values trials get."""

from __future__ import annotations

from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from mlspec.spec.sweep import Choice, LogUniform, Normal, RandInt, SweepJob, Uniform

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.samplers import BaseSampler

# A normal parameter is searched as its quantile in (EDGE, 1 - EDGE): Optuna has no normal distribution, and a
# uniform quantile through the inverse CDF is exactly normal (TPE then models the quantile).
EDGE = 1e-6


def distributions(sweep: SweepJob) -> dict[str, BaseDistribution]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    found: dict[str, BaseDistribution] = {}
    for name, dim in sweep.search_space.items():
        if isinstance(dim, Choice):
            found[name] = CategoricalDistribution(dim.values)
        elif isinstance(dim, Uniform):
            found[name] = FloatDistribution(dim.min_value, dim.max_value)
        elif isinstance(dim, LogUniform):
            found[name] = FloatDistribution(dim.low, dim.high, log=True)
        elif isinstance(dim, RandInt):
            found[name] = IntDistribution(0, dim.upper - 1)
        else:
            found[name] = FloatDistribution(EDGE, 1 - EDGE)
    return found


def trial_values(sweep: SweepJob, params: dict[str, Any]) -> dict[str, Any]:
    """The values a trial's command receives, from the parameters Optuna chose."""
    values: dict[str, Any] = {}
    for name, dim in sweep.search_space.items():
        value = params[name]
        values[name] = NormalDist(dim.mu, dim.sigma).inv_cdf(value) if isinstance(dim, Normal) else value
    return values


def sampler(sweep: SweepJob, seed: int) -> BaseSampler:
    """grid: every combination of the choices; random; bayesian: TPE, lying about running trials so concurrent
    ones are not asked for the same point."""
    from optuna.samplers import GridSampler, RandomSampler, TPESampler

    if sweep.sampling_algorithm == "grid":
        grid = {name: list(dim.values) for name, dim in sweep.search_space.items() if isinstance(dim, Choice)}

        class Grid(GridSampler):
            def after_trial(self, *args: Any) -> None:
                """The sweep counts its trials itself: Optuna's study.stop() works only inside optimize()."""

        return Grid(grid, seed=seed)
    if sweep.sampling_algorithm == "random":
        return RandomSampler(seed=seed)
    startup = min(10, max(2, sweep.limits.max_total_trials // 3))
    return TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)


def total_trials(sweep: SweepJob) -> int:
    """Trials the sweep runs in all: max_total_trials, or fewer where the grid is smaller."""
    limit = sweep.limits.max_total_trials
    return min(limit, sweep.grid_size()) if sweep.sampling_algorithm == "grid" else limit

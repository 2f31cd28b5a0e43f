"""The autoscaling policy: the gateway's measurements over time in, the number of replicas a deployment wants out.

Knative's rules, on the gateway's own counts: desired = ceil(average load over `window` / target per replica),
clamped to [min, max]; the count goes up once every proposal of the last `scale_up_delay` was higher than it (to
the lowest of them), and down once every proposal of the last `scale_down_delay` was lower (to the highest of
them), so a short lull never drops a replica that the next burst needs. Requests held for want of any replica
(scaled to zero) ask for one at once, whatever the delays: that is the activator's signal.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from mlspec.spec.endpoint import Autoscale


@dataclass(frozen=True)
class ScalingSettings:
    min_instances: int
    max_instances: int
    metric: Literal["concurrency", "rps"]
    target: float  # per replica
    window: float = 6.0
    scale_up_delay: float = 0.0
    scale_down_delay: float = 30.0

    @classmethod
    def of(cls, autoscale: Autoscale, max_concurrent_per_instance: int) -> ScalingSettings:
        metric, target = autoscale.target(max_concurrent_per_instance)
        return cls(autoscale.min_instances, autoscale.max_instances, "rps" if metric == "rps" else "concurrency",
                   target, autoscale.window, autoscale.scale_up_delay, autoscale.scale_down_delay)


@dataclass(frozen=True)
class Load:
    """One reading of a deployment's counters at the gateway (its control channel's `stats`)."""

    in_flight: int = 0  # every request taken and not yet answered, queued and held ones included
    queued: int = 0
    held: int = 0
    requests_total: int = 0


class ScalingPolicy:
    """Feed it `observe(now, load)` at a steady pace; `decide(now)` answers the replica count to run."""

    def __init__(self, settings: ScalingSettings, current: int) -> None:
        self.settings = settings
        self.current = self.clamp(current)
        self._load: deque[tuple[float, float]] = deque()  # (time, concurrency or rate) within the window
        self._proposals: deque[tuple[float, int]] = deque()  # (time, desired) within the longer delay
        self._first: float | None = None
        self._last_total: tuple[float, int] | None = None
        self._held = 0

    def clamp(self, count: int) -> int:
        return max(self.settings.min_instances, min(self.settings.max_instances, count))

    def observe(self, now: float, load: Load) -> None:
        if self._first is None:
            self._first = now
        self._held = load.held
        if self.settings.metric == "concurrency":
            self._sample(now, max(load.in_flight, load.queued + load.held))  # in_flight counts both already
        else:
            previous, self._last_total = self._last_total, (now, load.requests_total)
            if previous is not None and now > previous[0] and load.requests_total >= previous[1]:
                self._sample(now, (load.requests_total - previous[1]) / (now - previous[0]))
            elif load.held:
                self._sample(now, float(load.held))  # no rate yet, but someone is waiting
        self._proposals.append((now, self.proposal(now)))
        horizon = max(self.settings.scale_up_delay, self.settings.scale_down_delay)
        while len(self._proposals) > 1 and self._proposals[1][0] < now - horizon:
            self._proposals.popleft()

    def _sample(self, now: float, value: float) -> None:
        self._load.append((now, value))
        while self._load and self._load[0][0] <= now - self.settings.window and len(self._load) > 1:
            self._load.popleft()

    def average(self) -> float:
        return sum(value for _, value in self._load) / len(self._load) if self._load else 0.0

    def proposal(self, now: float) -> int:
        """What the load of the window asks for, clamped; at least one while a request is held."""
        wanted = self.clamp(math.ceil(self.average() / self.settings.target - 1e-9))
        return max(wanted, 1) if self._held else wanted

    def decide(self, now: float) -> int:
        if self._held and self.current == 0:
            self.current = self.clamp(max(1, self.proposal(now)))  # the activator: never wait to leave zero
            return self.current
        up = self._sustained(now, self.settings.scale_up_delay)
        if up and min(up) > self.current:
            self.current = min(up)
            return self.current
        down = self._sustained(now, self.settings.scale_down_delay)
        if down and max(down) < self.current:
            self.current = max(down)
        return self.current

    def _sustained(self, now: float, delay: float) -> list[int]:
        """The proposals in force over the last `delay` seconds (each holds until the next, so the one made before
        the span counts too: a long pause between readings never empties it); none while the policy has not
        watched that long."""
        if self._first is None or not self._proposals or now - self._first < delay:
            return []
        since = now - delay
        recent = [count for at, count in self._proposals if at >= since]
        before = [count for at, count in self._proposals if at < since]
        return recent + before[-1:]

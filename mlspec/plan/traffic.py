"""Traffic shifts as reviewers read them: `traffic blue 100 → 90, green 0 → 10` rather than one line per key."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SPLITS = ("traffic", "mirror_traffic")
TRAFFIC_REASONS = ("traffic ", "mirror traffic ")  # how the folded reasons start
SHIFT_TRAFFIC = "shift traffic"  # an endpoint's verb when only its split moves


def split_of(spec: dict[str, Any], field: str = "traffic") -> dict[str, int]:
    """An endpoint spec's split as it routes: an online endpoint with one deployment and no split sends it all."""
    split = dict(spec.get(field) or {})
    deployments = spec.get("deployments") or {}
    if field == "traffic" and not split and deployments and spec.get("type", "online") == "online":
        split = {next(iter(deployments)): 100}
    return {name: int(share) for name, share in split.items()}


def split_change(before: dict[str, int], after: dict[str, int]) -> str:
    """'blue 100 → 90, green 0 → 10' for the deployments whose share changes; '' when none does."""
    names = list(dict.fromkeys([*before, *after]))
    moved = [f"{n} {before.get(n, 0)} → {after.get(n, 0)}" for n in names if before.get(n, 0) != after.get(n, 0)]
    return ", ".join(moved)


def fold_traffic(old: dict[str, Any], new: dict[str, Any], reasons: list[str]) -> list[str]:
    """`reasons` with the per-key traffic lines of an endpoint replaced by one line per split that moved, first."""
    kept = [r for r in reasons if not r.startswith(SPLITS)]
    folded = []
    for field in SPLITS:
        moved = split_change(split_of(old, field), split_of(new, field))
        if moved:
            folded.append(f"{field.replace('_', ' ')} {moved}")
    return folded + kept


@dataclass(frozen=True, slots=True)
class TrafficShift:
    """An endpoint's split before and after, for one split field (`traffic` or `mirror_traffic`)."""

    endpoint: str
    field: str
    before: dict[str, int]
    after: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def traffic_shifts(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[TrafficShift]:
    """Every split that moves, between two maps of endpoint name -> spec (an endpoint missing on a side has none)."""
    shifts = []
    for name in sorted(set(before) | set(after)):
        for field in SPLITS:
            old, new = split_of(before.get(name, {}), field), split_of(after.get(name, {}), field)
            if old != new:
                shifts.append(TrafficShift(name, field, old, new))
    return shifts

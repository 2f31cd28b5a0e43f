"""Plans as data: what an apply will do to each resource, and why, in the user's terms."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Action = Literal["create", "update", "replace", "delete", "noop"]


@dataclass(frozen=True, slots=True)
class Record:
    """What the state store remembers about one applied resource."""

    id: str
    kind: str
    hash: str
    spec: dict[str, Any]  # canonical spec when applied
    files: dict[str, str] = field(default_factory=dict)  # file -> sha256 when applied
    upstream: dict[str, str] = field(default_factory=dict)  # upstream id -> its hash when applied
    outputs: dict[str, Any] = field(default_factory=dict)  # what apply produced: run id, model version, ports
    status: str = "ready"  # ready | failed | pending


@dataclass(frozen=True, slots=True)
class Drift:
    """A difference between what the state records and what really runs, found by a refresh."""

    reason: str  # in the user's terms: "replica blue/0 is not running"
    verb: str = ""  # what `up` does about it: "redeploy", "reconfigure gateway" (default: the kind's verb)
    recreate: bool = False  # what was made is gone (e.g. its MLflow store was emptied): planned as a create


@dataclass(frozen=True, slots=True)
class Change:
    id: str
    kind: str
    action: Action
    reasons: tuple[str, ...] = ()
    verb: str = ""  # the kind's word for the action: retrain, register, redeploy, rebuild
    version: int | None = None  # a model's version once applied (a new one, or the one it keeps or reuses)
    registers: bool = False  # a model: applying creates a new version in the registry
    drifted: bool = False  # planned (also) because what runs differs from what was recorded

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Blocker:
    """Why a plan cannot be applied: the resource and what is wrong, in the user's terms."""

    id: str
    message: str


@dataclass
class Plan:
    changes: list[Change]  # creates/updates in dependency order, then deletes dependants-first
    # Why it cannot be applied as it stands (a model alias neither the registry nor the spec has): `up` stops
    # before anything runs.
    blockers: list[Blocker] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return any(c.action != "noop" for c in self.changes)

    def count(self, action: Action) -> int:
        return sum(c.action == action for c in self.changes)

    def get(self, resource_id: str) -> Change | None:
        return next((c for c in self.changes if c.id == resource_id), None)

    @property
    def registrations(self) -> int:
        """How many new model versions applying registers."""
        return sum(c.registers for c in self.changes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "changes": [c.as_dict() for c in self.changes],
            "summary": {a: self.count(a) for a in ("create", "update", "replace", "delete", "noop")},
            "registrations": self.registrations,
            "blockers": [asdict(b) for b in self.blockers],
        }

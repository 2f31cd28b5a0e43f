"""A plan with what it was made against: the base it compares with, the target, and the graph of what changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from mlspec.graph import Graph
from mlspec.plan.model import Plan, Record
from mlspec.plan.planner import spec_of
from mlspec.plan.traffic import TrafficShift, traffic_shifts

Against = Literal["git", "state", "workspace"]


class Generated(Protocol):
    """One generated resource of a Pulumi program that a change touches."""

    action: str

    def as_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Base:
    """What the plan compares the spec with."""

    against: Against
    description: str  # "3c3d573 (merge base with main)", "the state published at …", "the workspace .mlspec"
    details: dict[str, Any] = field(default_factory=dict)  # git: ref, commit, merge_base; state: location, …


@dataclass
class PlanReport:
    plan: Plan
    base: Base
    target: str
    edges: list[tuple[str, str]]  # (upstream, dependant) between resources the plan lists
    traffic: list[TrafficShift] = field(default_factory=list)  # endpoint splits that move
    generated: list[Generated] | None = None  # the Pulumi program's resources that change; None: not computed

    @property
    def has_changes(self) -> bool:
        return self.plan.has_changes or bool(self.generated)


def dependency_edges(head: Graph, base: dict[str, Record]) -> list[tuple[str, str]]:
    """Every dependency of the head graph, and the recorded ones of resources that are deleted."""
    edges = [(up, node.id) for node in head.nodes.values() for up in node.deps]
    edges += [(up, rid) for rid, record in base.items() if rid not in head.nodes for up in record.upstream]
    return edges


def build_report(plan: Plan, head: Graph, base_records: dict[str, Record], base: Base, target: str,
                 generated: list[Generated] | None = None) -> PlanReport:
    """The report of `plan`, made from `head` against `base_records` (the older spec's, or the recorded state)."""
    endpoints_before = {rid.split("/", 1)[1]: record.spec for rid, record in base_records.items()
                        if record.kind == "Endpoint"}
    endpoints_after = {node.name: spec_of(node) for node in head.nodes.values() if node.kind == "Endpoint"}
    return PlanReport(plan, base, target, dependency_edges(head, base_records),
                      traffic_shifts(endpoints_before, endpoints_after), generated)

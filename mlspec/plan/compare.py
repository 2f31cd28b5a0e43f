"""One spec against another (a branch against its base): the older spec stands in for the recorded state."""

from __future__ import annotations

from mlspec.graph import Graph
from mlspec.plan.labels import desired_labels
from mlspec.plan.model import Record
from mlspec.plan.planner import spec_of
from mlspec.plan.schedules import desired_schedule


def records_of(graph: Graph) -> dict[str, Record]:
    """The state applying `graph` would leave: every resource ready, with the hashes, files and labels it has."""
    workspace = graph.spec.workspace
    return {node.id: Record(node.id, node.kind, node.hash, spec_of(node), dict(node.files),
                            {up: graph.nodes[up].hash for up in node.deps},
                            {"labels": desired_labels(node, workspace), "schedule": desired_schedule(node)})
            for node in graph.nodes.values()}


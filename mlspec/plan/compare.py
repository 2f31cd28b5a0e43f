"""One spec against another (a branch against its base): the older spec stands in for the recorded state."""

from __future__ import annotations

from mlspec.graph import Graph, Node
from mlspec.graph.steps import pipeline_steps
from mlspec.plan.labels import desired_labels
from mlspec.plan.model import Record
from mlspec.plan.planner import spec_of
from mlspec.plan.schedules import desired_schedule
from mlspec.spec.pipeline import PipelineJob


def records_of(graph: Graph) -> dict[str, Record]:
    """The state applying `graph` would leave: every resource ready, with the hashes, files and labels it has."""
    workspace = graph.spec.workspace
    return {node.id: Record(node.id, node.kind, node.hash, spec_of(node), dict(node.files),
                            {up: graph.nodes[up].hash for up in node.deps},
                            {"labels": desired_labels(node, workspace), **_steps(graph, node),
                             "schedule": desired_schedule(node)})
            for node in graph.nodes.values()}


def _steps(graph: Graph, node: Node) -> dict[str, object]:
    """A pipeline's steps as a finished apply records them: a branch's plan then names the steps it re-runs."""
    if not isinstance(node.resource, PipelineJob):
        return {}
    return {"steps": {name: {"status": "succeeded", "static": step.hash}
                      for name, step in pipeline_steps(graph, node.id).items()}}


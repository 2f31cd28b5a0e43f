"""The resource graph as text (an indented dependency listing) or Mermaid for docs and PRs."""

from __future__ import annotations

from mlspec.graph import Graph
from mlspec.graph.steps import pipeline_steps
from mlspec.spec.pipeline import PipelineJob


def _label(node_id: str, graph: Graph) -> str:
    node = graph.nodes[node_id]
    extra = " (implicit)" if node.implicit else ""
    return f"{node_id}{extra}  {node.hash[:12]}"


def graph_text(graph: Graph) -> str:
    lines = []
    for node_id, node in graph.nodes.items():
        lines.append(_label(node_id, graph))
        for dep in node.deps:
            lines.append(f"  ← {dep}")
        if isinstance(node.resource, PipelineJob):
            for step in pipeline_steps(graph, node_id).values():
                lines.append(f"  step {step.name}  {step.hash[:12]}")
                lines.extend(f"    ← step {dep}" for dep in step.deps)
    return "\n".join(lines)


def graph_json(graph: Graph) -> dict[str, object]:
    """Nodes with their hashes and upstream ids; a pipeline's also with its steps and their upstream steps."""
    nodes: list[dict[str, object]] = []
    for n in graph.nodes.values():
        entry: dict[str, object] = {"id": n.id, "hash": n.hash, "deps": list(n.deps), "implicit": n.implicit}
        if isinstance(n.resource, PipelineJob):
            entry["steps"] = [{"name": s.name, "hash": s.hash, "deps": list(s.deps)}
                              for s in pipeline_steps(graph, n.id).values()]
        nodes.append(entry)
    return {"nodes": nodes}


def _mermaid_id(node_id: str) -> str:
    return node_id.replace("/", "__").replace("-", "_")


_SHAPES = {"Compute": ("[[", "]]"), "Environment": ("[/", "/]"), "Data": ("[(", ")]"), "Job": ("[", "]"),
           "Model": ("{{", "}}"), "Endpoint": ("([", "])")}


def graph_mermaid(graph: Graph) -> str:
    lines = ["flowchart LR"]
    for node_id, node in graph.nodes.items():
        left, right = _SHAPES.get(node.kind, ("[", "]"))
        if isinstance(node.resource, PipelineJob):  # the pipeline as a box holding its steps and their edges
            lines.append(f'  subgraph {_mermaid_id(node_id)}["{node_id}"]')
            steps = pipeline_steps(graph, node_id)
            lines.extend(f'    {_mermaid_id(node_id)}__{_mermaid_id(s)}["{s}"]' for s in steps)
            lines.extend(f"    {_mermaid_id(node_id)}__{_mermaid_id(dep)} --> {_mermaid_id(node_id)}__"
                         f"{_mermaid_id(s.name)}" for s in steps.values() for dep in s.deps)
            lines.append("  end")
            continue
        lines.append(f'  {_mermaid_id(node_id)}{left}"{node_id}"{right}')
    for node_id, node in graph.nodes.items():
        for dep in node.deps:
            lines.append(f"  {_mermaid_id(dep)} --> {_mermaid_id(node_id)}")
    return "\n".join(lines)

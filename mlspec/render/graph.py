"""The resource graph as text (an indented dependency listing) or Mermaid for docs and PRs."""

from __future__ import annotations

from mlspec.graph import Graph


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
    return "\n".join(lines)


def _mermaid_id(node_id: str) -> str:
    return node_id.replace("/", "__").replace("-", "_")


_SHAPES = {"Compute": ("[[", "]]"), "Environment": ("[/", "/]"), "Data": ("[(", ")]"), "Job": ("[", "]"),
           "Model": ("{{", "}}"), "Endpoint": ("([", "])")}


def graph_mermaid(graph: Graph) -> str:
    lines = ["flowchart LR"]
    for node_id, node in graph.nodes.items():
        left, right = _SHAPES.get(node.kind, ("[", "]"))
        lines.append(f'  {_mermaid_id(node_id)}{left}"{node_id}"{right}')
    for node_id, node in graph.nodes.items():
        for dep in node.deps:
            lines.append(f"  {_mermaid_id(dep)} --> {_mermaid_id(node_id)}")
    return "\n".join(lines)

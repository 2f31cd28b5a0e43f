"""What a plan changes as a Mermaid flowchart: changed resources, coloured by action, with their dependencies."""

from __future__ import annotations

import re

from mlspec.plan import Change
from mlspec.render.plan import SYMBOLS, resource_name

# Colours a reviewer knows from diffs: green adds, amber changes, red removes.
_CLASSES = {"create": "fill:#dafbe1,stroke:#1a7f37", "update": "fill:#fff8c5,stroke:#9a6700",
            "replace": "fill:#ffebe9,stroke:#cf222e,stroke-dasharray:4", "delete": "fill:#ffebe9,stroke:#cf222e"}


def mermaid(changed: list[Change], edges: list[tuple[str, str]]) -> list[str]:
    """`flowchart LR` lines: one node per changed resource, an edge wherever one depends on another."""
    ids = {c.id: _node_id(c.id) for c in changed}
    lines = ["flowchart LR"]
    for change in changed:
        label = f"{SYMBOLS[change.action]} {resource_name(change)}".replace('"', "'")
        lines.append(f'  {ids[change.id]}["{label}"]:::{change.action}')
    lines += [f"  {ids[up]} --> {ids[down]}" for up, down in dict.fromkeys(edges) if up in ids and down in ids]
    used = dict.fromkeys(c.action for c in changed)
    lines += [f"  classDef {action} {_CLASSES[action]}" for action in used]
    return lines


def _node_id(resource_id: str) -> str:
    """Mermaid ids allow letters, digits and underscores: `job/train-forest` -> `job_train_forest`."""
    return re.sub(r"\W", "_", resource_id)

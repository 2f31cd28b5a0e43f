"""What `mlspec down` is about to remove, as text: each resource, the processes it runs, and what --purge adds."""

from __future__ import annotations

from typing import Any


def removal_text(ids: list[str], processes: dict[str, list[Any]], purge: bool, workspace: str) -> str:
    lines = [f"mlspec down removes {len(ids)} resource(s) of the workspace in {workspace}:"]
    for rid in ids:
        lines.append(f"  - {rid}")
        for row in processes.get(rid, []):
            pid = f"pid {row.pid}" if row.pid else "not running"
            lines.append(f"      process {row.id} ({pid})")
    if purge:
        models = [rid.split("/", 1)[1] for rid in ids if rid.startswith("model/")]
        lines.append("  --purge also deletes: " + "; ".join([
            *([f"registered models {', '.join(models)} (every version)"] if models else []),
            "the workspace's MLflow runs and experiments", "data snapshots", "batch predictions", "job run folders"]))
    else:
        lines.append("  Registered models, MLflow runs, data snapshots, batch predictions and notebooks are kept "
                     "(--purge deletes all but the notebooks).")
    return "\n".join(lines)

"""Where an endpoint's gateway records its traffic snapshots and its sampled requests in the workspace."""

from __future__ import annotations

from pathlib import Path

from mlspec.backends.local.paths import WorkspacePaths


def traffic_history(paths: WorkspacePaths, endpoint: str) -> Path:
    """JSON lines of the gateway's cumulative counts, one snapshot every few seconds (`mlspec endpoint stats`)."""
    return paths.endpoint(endpoint) / "traffic.jsonl"


def samples_folder(paths: WorkspacePaths, endpoint: str) -> Path:
    """.mlspec/samples/ENDPOINT/DEPLOYMENT/YYYY/MM/DD/HH.jsonl (the endpoint's data_collector)."""
    return paths.root / "samples" / endpoint

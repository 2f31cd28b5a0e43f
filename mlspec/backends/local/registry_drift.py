"""Drift in the MLflow registry: deleted versions, moved aliases, a store emptied or replaced.

Read straight from the workspace's `mlflow.db` (sqlite, read-only, no MLflow import), so a plan stays fast.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from mlspec.plan import Drift, Record
from mlspec.spec import ModelRef

DELETED_STAGE = "Deleted_Internal"  # MLflow's sqlalchemy store keeps a deleted version's row under this stage
_TABLES = {"model_versions", "registered_model_aliases", "runs"}


@dataclass
class RegistryView:
    problem: str | None = None  # why nothing in the store can be trusted: missing, emptied, unreadable
    versions: dict[tuple[str, int], str | None] = field(default_factory=dict)  # -> run id; None: deleted
    aliases: dict[tuple[str, str], int] = field(default_factory=dict)
    runs: set[str] = field(default_factory=set)  # live (not deleted) runs among those asked about


def read(db: Path, names: set[str], run_ids: set[str]) -> RegistryView:
    if not db.exists():
        return RegistryView(f"{db.name} is missing (deleted or moved?)")
    if db.stat().st_size == 0:
        return RegistryView(f"{db.name} was emptied")
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=2)
    except sqlite3.Error as exc:
        return RegistryView(f"{db.name} cannot be read ({exc})")
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables >= _TABLES:
            return RegistryView(f"{db.name} was emptied or replaced (it holds no MLflow registry)")
        view = RegistryView()
        marks = ",".join("?" * len(names))
        rows = conn.execute(f"SELECT name, version, current_stage, run_id FROM model_versions WHERE name IN ({marks})",
                            list(names))
        for name, version, stage, run_id in rows:
            view.versions[(name, int(version))] = None if stage == DELETED_STAGE else (run_id or "")
        for name, alias, version in conn.execute(
                f"SELECT name, alias, version FROM registered_model_aliases WHERE name IN ({marks})", list(names)):
            view.aliases[(name, alias)] = int(version)
        marks = ",".join("?" * len(run_ids))
        view.runs = {row[0] for row in conn.execute(
            f"SELECT run_uuid FROM runs WHERE lifecycle_stage != 'deleted' AND run_uuid IN ({marks})", list(run_ids))}
        return view
    except sqlite3.DatabaseError as exc:
        return RegistryView(f"{db.name} is not a readable MLflow store ({exc})")
    finally:
        conn.close()


def _served(record: Record) -> list[tuple[str, str, int | None]]:
    """(what, model reference, recorded version) for each model an endpoint record serves or scored with."""
    if record.kind != "Endpoint":
        return []
    if record.spec.get("type") == "batch":
        return [("", str(record.spec.get("model", "")), record.outputs.get("version"))]
    deployments = record.outputs.get("deployments", {})
    return [(f"deployment {name}: ", str(spec.get("model", "")), deployments.get(name, {}).get("version"))
            for name, spec in record.spec.get("deployments", {}).items()]


def registry_drift(records: list[Record], tracking_uri: str) -> dict[str, list[Drift]]:
    """Drift of the jobs, models and endpoints in `records` against a sqlite tracking store."""
    if not tracking_uri.startswith("sqlite:///"):
        return {}  # a tracking server is not the workspace's to check (nor to wait on)
    jobs = [r for r in records if r.kind == "Job" and r.outputs.get("run_id")]
    models = [r for r in records if r.kind == "Model" and r.outputs.get("version") is not None]
    endpoints = [r for r in records if _served(r)]
    if not (jobs or models or endpoints):
        return {}
    names = {n for r in jobs for n in r.outputs.get("models", {})} | {r.id.split("/", 1)[1] for r in models}
    names |= {ModelRef.parse(ref).name for r in endpoints for _, ref, _ in _served(r) if ref}
    view = read(Path(tracking_uri[len("sqlite:///"):]), names, {str(r.outputs["run_id"]) for r in jobs})
    found: dict[str, list[Drift]] = defaultdict(list)
    if view.problem:
        for record in jobs + models:
            found[record.id].append(Drift(view.problem, recreate=True))
        for record in endpoints:
            found[record.id].append(Drift(f"the models it serves are gone: {view.problem}"))
        return found
    for record in jobs:
        _job(record, view, found[record.id])
    for record in models:
        _model(record, view, found[record.id])
    for record in endpoints:
        _aliases(record, view, found[record.id])
    return {rid: items for rid, items in found.items() if items}


def _job(record: Record, view: RegistryView, out: list[Drift]) -> None:
    run_id = str(record.outputs["run_id"])
    if run_id not in view.runs:
        out.append(Drift(f"its run {run_id[:12]} is not in mlflow.db (emptied or replaced?)", recreate=True))
        return
    runs = record.outputs.get("model_runs", {})  # a version reused from identical files is an earlier run's
    for name, version in record.outputs.get("models", {}).items():
        registered = view.versions.get((name, int(version)), "")
        if registered is None:
            out.append(Drift(f"{name} version {version} was deleted from the registry", "retrain"))
        elif registered != runs.get(name, run_id):
            out.append(Drift(f"{name} version {version} in mlflow.db is another run's (replaced?)", recreate=True))


def _model(record: Record, view: RegistryView, out: list[Drift]) -> None:
    name, version = record.id.split("/", 1)[1], int(record.outputs["version"])
    registered = view.versions.get((name, version), "")
    if registered is None:
        out.append(Drift(f"version {version} was deleted from the registry", "re-register"))
    elif (name, version) not in view.versions:
        out.append(Drift(f"mlflow.db has no version {version} of it (emptied or replaced?)", recreate=True))
    elif record.outputs.get("run_id") and registered != record.outputs["run_id"]:
        out.append(Drift(f"version {version} in mlflow.db is another run's (replaced?)", recreate=True))


def _aliases(record: Record, view: RegistryView, out: list[Drift]) -> None:
    """An endpoint on `model@alias` follows the alias: moved in MLflow, it is redeployed (or re-scored)."""
    for what, text, version in _served(record):
        ref = ModelRef.parse(text)
        if ref.alias in (None, "latest") or version is None:
            continue
        now = view.aliases.get((ref.name, ref.alias))
        if now is None:
            out.append(Drift(f"{what}{ref.name}@{ref.alias} no longer exists (removed outside mlspec)"))
        elif now != version:
            out.append(Drift(f"{what}{ref.name}@{ref.alias} moved {version} → {now} (outside mlspec)"))

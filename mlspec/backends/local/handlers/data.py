"""Data locally: a read-only snapshot per content version, so a job always reads what was hashed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from mlspec.backends.local.context import Context
from mlspec.graph import Node
from mlspec.plan import Record


def _copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # same filesystem: no bytes copied
    except OSError:
        shutil.copy2(src, dst)


def apply(ctx: Context, node: Node) -> dict[str, Any]:
    source = ctx.graph.spec.files[node.id]["path"]
    snapshot = ctx.paths.data(node.name, node.hash)
    target = snapshot / source.name
    if not target.exists():
        tmp = snapshot.with_name(snapshot.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if source.is_dir():
            shutil.copytree(source, tmp / source.name, copy_function=_copy)  # type: ignore[arg-type]
        else:
            _copy(source, tmp / source.name)
        shutil.rmtree(snapshot, ignore_errors=True)
        tmp.rename(snapshot)  # complete or absent: an interrupted copy is never mistaken for a snapshot
    return {"path": str(target.resolve()), "version": node.hash[:12]}


def delete(ctx: Context, record: Record, purge: bool) -> None:
    if purge:
        shutil.rmtree(ctx.paths.root / "datastore" / record.id.split("/", 1)[1], ignore_errors=True)

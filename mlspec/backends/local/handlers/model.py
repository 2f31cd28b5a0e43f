"""Models locally: versions come from their job's registration, or are registered from a path."""

from __future__ import annotations

from typing import Any

from mlspec.backends.local.context import Context, StepFailed
from mlspec.graph import Node
from mlspec.plan import Record
from mlspec.spec import Model


def apply(ctx: Context, node: Node) -> dict[str, Any]:
    model = node.resource
    assert isinstance(model, Model)
    if model.job:
        job_outputs = ctx.outputs(f"job/{model.job}")
        version = job_outputs.get("models", {}).get(model.name)
        if version is None:
            raise StepFailed(f"model '{model.name}': job '{model.job}' registered no version of it")
        return {"version": int(version), "run_id": job_outputs.get("run_id"), "uri": f"models:/{model.name}/{version}"}
    from mlspec.runtime import packaging

    source = ctx.graph.spec.files[node.id]["path"]
    registered = packaging.register_path(ctx.tracking_uri, model.name, source, flavor=model.flavor,
                                         aliases=list(model.aliases), tags={"mlspec.hash": node.hash},
                                         loader=model.loader, signature=model.signature,
                                         code=str(ctx.graph.spec.root) if model.loader else None)
    return {"version": int(registered.version), "uri": f"models:/{model.name}/{registered.version}"}


def delete(ctx: Context, record: Record, purge: bool) -> None:
    """Registered versions are kept (they are the workspace's history) unless purging."""
    if not purge:
        return
    from mlspec.runtime.tracking import client

    name = record.id.split("/", 1)[1]
    try:
        client(ctx.tracking_uri).delete_registered_model(name)
    except Exception as exc:  # already gone, or never registered
        ctx.say(f"model {name}: {exc}")

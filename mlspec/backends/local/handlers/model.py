"""Models locally: versions come from their job's registration, or are registered from a path; aliases as declared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlspec.backends.local.context import Context, StepFailed
from mlspec.backends.local.handlers.model_versions import record_registered
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
        number = int(version)
        run_id = job_outputs.get("model_runs", {}).get(model.name) or job_outputs.get("run_id")
        outputs: dict[str, Any] = {"version": number, "run_id": run_id,
                                   "uri": f"models:/{model.name}/{number}"}
    else:
        from mlspec.runtime import packaging

        source = ctx.graph.spec.files[node.id]["path"]
        # A loader's module is looked up beside the spec file that declares the model, as its path is.
        code = str(Path(ctx.graph.spec.resources[node.id].doc.file).resolve().parent) if model.loader else None
        registered = packaging.register_path(ctx.tracking_uri, model.name, source, flavor=model.flavor,
                                             loader=model.loader, code=code, tags={"mlspec.hash": node.hash},
                                             signature=model.signature)
        number = int(registered.version)
        record_registered(ctx, model.name, number, registered.sha256, registered.run_id,
                          reused=registered.reused)
        outputs = {"version": number, "uri": f"models:/{model.name}/{number}"}
    previous = ctx.outputs(node.id).get("aliases", [])
    outputs["aliases"] = _set_aliases(ctx, model, number, previous)
    return outputs


def _set_aliases(ctx: Context, model: Model, version: int, previous: list[str]) -> list[str]:
    """Point every declared alias at this version, whether or not anything retrained (a newly declared alias on an
    unchanged model is set too); remove the aliases an earlier `up` set that the spec no longer declares."""
    from mlspec.runtime.tracking import client

    registry = client(ctx.tracking_uri)
    declared = [a for a in model.aliases if a.lower() != "latest"]  # 'latest' is always implied
    try:
        for alias in declared:
            registry.set_registered_model_alias(model.name, alias, str(version))
        for alias in previous:
            if alias not in declared:
                registry.delete_registered_model_alias(model.name, alias)
    except Exception as exc:
        raise StepFailed(f"model '{model.name}': cannot set its aliases on version {version}: {exc}") from exc
    return declared


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

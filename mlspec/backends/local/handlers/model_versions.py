"""Which registered version a model reference (`name`, `name:3`, `name@alias`) means, for what serves or scores it."""

from __future__ import annotations

from mlspec.backends.local.context import Context, StepFailed
from mlspec.spec import ModelRef


def resolve_version(ctx: Context, model: str, who: str) -> int:
    """The version `model` names: pinned, the one this workspace registered last, or an MLflow alias's.

    `who` starts every error message, e.g. "batch endpoint 'nightly'".
    """
    ref = ModelRef.parse(model)
    if ref.version is not None:
        return ref.version
    if ref.alias in (None, "latest"):
        version = ctx.outputs(f"model/{ref.name}").get("version")
        if version is None:
            raise StepFailed(f"{who}: model '{ref.name}' has no version yet")
        return int(version)
    from mlspec.runtime.tracking import client

    try:
        return int(client(ctx.tracking_uri).get_model_version_by_alias(ref.name, ref.alias).version)
    except Exception as exc:
        raise StepFailed(f"{who}: no version of '{ref.name}' has alias '{ref.alias}' ({exc})") from exc

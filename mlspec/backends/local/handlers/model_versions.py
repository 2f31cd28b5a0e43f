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


def recorded_digest(ctx: Context, name: str, version: int) -> str | None:
    """The sha256 a replica or batch run must find in `name` version `version`'s files, from the workspace's state.

    mlspec records the digest of every version it registers; MLflow's `mlspec.sha256` tag is only a copy, and
    whoever can rewrite mlflow.db could change it along with the files. A version registered elsewhere (a moved
    alias, a pinned number) is recorded from its tag the first time the workspace serves it, and from then on
    the record stands. None: no digest anywhere (the server then refuses the version, saying why).
    """
    with ctx.lock:
        recorded = ctx.store.model_digest(name, version)
    if recorded:
        return recorded[0]
    from mlspec.runtime.serving.integrity import TAG
    from mlspec.runtime.tracking import client

    try:
        found = client(ctx.tracking_uri).get_model_version(name, str(version))
    except Exception:  # the server reports a missing version itself
        return None
    tag = found.tags.get(TAG)
    if not tag:
        return None
    ctx.say(f"model {name} version {version} was not registered by this workspace: its files are checked against "
            f"the digest MLflow holds now ({tag[:12]}), recorded for every later start")
    with ctx.lock:
        ctx.store.record_digest(name, version, tag, found.run_id, "mlflow-tag")
    return tag


def record_registered(ctx: Context, name: str, version: int, sha256: str, run_id: str | None,
                      reused: bool = False) -> None:
    """Remember the digest mlspec computed when it registered a version. A reused version's digest was read back
    from MLflow, so a digest recorded earlier for it stands."""
    with ctx.lock:
        if reused and ctx.store.model_digest(name, version):
            return
        ctx.store.record_digest(name, version, sha256, run_id, "registered")

"""The local engine's read of its model registry for a plan: latest versions, aliases, versions by source files."""

from __future__ import annotations

import logging
from pathlib import Path

from mlspec.plan import RegistryView
from mlspec.runtime.serving.integrity import SOURCE_TAG


def read_registry(tracking_uri: str, names: list[str], local_db: Path | None) -> RegistryView | None:
    """What the registry holds for these models; an empty view when the local store does not exist yet; None when
    the registry cannot be read (the plan then numbers versions from the workspace's own records)."""
    if local_db is not None and not local_db.exists():
        return RegistryView()
    try:
        import mlflow  # noqa: F401 - imported first: it sets its loggers' levels on import

        from mlspec.runtime.tracking import client

        for noisy in ("mlflow", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        registry = client(tracking_uri)
        view = RegistryView()
        for name in sorted(set(names)):
            versions = [v for v in registry.search_model_versions(f"name='{name}'") if v.status == "READY"]
            if not versions:
                continue
            view.versions[name] = {int(v.version) for v in versions}
            view.latest[name] = max(view.versions[name])
            for version in sorted(versions, key=lambda v: int(v.version)):  # the newest version with those files
                if version.tags.get(SOURCE_TAG):
                    view.sources.setdefault(name, {})[version.tags[SOURCE_TAG]] = int(version.version)
            aliases = getattr(registry.get_registered_model(name), "aliases", None) or {}
            view.aliases[name] = {str(alias): int(version) for alias, version in aliases.items()}
        return view
    except Exception:  # an unreachable tracking server, a store of another MLflow version
        return None

"""Finding a model's files: resolve models:/NAME/VERSION or @ALIAS through MLflow, copy them to a private folder."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mlspec.runtime.serving import sqlite_store
from mlspec.runtime.serving.integrity import TAG

# models:/iris-clf/3, models:/iris-clf@champion, models:/iris-clf@latest, models:/iris-clf/latest, models:/iris-clf
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@'\"]+)(?:/(?P<version>\d+|latest)|@(?P<alias>[\w.-]+))?/?$")


class ModelNotFound(Exception):
    """The URI names no model version the registry has, or its files cannot be fetched."""


@dataclass(frozen=True)
class ModelSource:
    name: str
    version: str | None  # None: a folder given directly, not from the registry
    location: str  # where the files are: the version's storage URI, or a local folder
    expected_sha256: str | None  # the version's mlspec.sha256 tag
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"model {self.name} version {self.version}" if self.version else f"model folder {self.location}"


def resolve(model_uri: str, tracking_uri: str | None) -> ModelSource:
    """The version a models:/ URI names (latest: the highest version number), or a local MLflow model folder."""
    match = _MODELS_URI.match(model_uri)
    if match is None:
        if model_uri.startswith("models:/"):
            raise ModelNotFound(f"'{model_uri}' is not a model URI: use models:/NAME/VERSION, models:/NAME@ALIAS or "
                                "models:/NAME@latest")
        folder = Path(model_uri.removeprefix("file://")).resolve()
        if not (folder / "MLmodel").is_file():
            raise ModelNotFound(f"{folder} is not an MLflow model folder (it has no MLmodel file)")
        return ModelSource(folder.name, None, str(folder), None)
    if not tracking_uri:
        raise ModelNotFound(f"{model_uri} is a registry URI: pass --tracking-uri (or set MLFLOW_TRACKING_URI)")
    name, version, alias = match.group("name"), match.group("version"), match.group("alias")
    try:
        answer = sqlite_store.lookup(tracking_uri, name, version, alias)
    except sqlite_store.NoVersions:
        raise ModelNotFound(f"model '{name}' has no versions in {tracking_uri}") from None
    except LookupError as error:
        raise ModelNotFound(f"cannot resolve {model_uri} in {tracking_uri}: {error}") from None
    if answer is not None:
        if answer.status != "READY":
            raise ModelNotFound(f"model {name} version {answer.version} is {answer.status}, not READY")
        return ModelSource(name, str(answer.version), answer.location, answer.tags.get(TAG), answer.tags)
    return _resolve_with_mlflow(model_uri, tracking_uri, name, version, alias)


def _resolve_with_mlflow(model_uri: str, tracking_uri: str, name: str, version: str | None,
                         alias: str | None) -> ModelSource:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        if version and version != "latest":
            found = client.get_model_version(name, version)
        elif alias and alias != "latest":
            found = client.get_model_version_by_alias(name, alias)
        else:
            versions = client.search_model_versions(f"name='{name}'", max_results=1, order_by=["version_number DESC"])
            if not versions:
                raise ModelNotFound(f"model '{name}' has no versions in {tracking_uri}")
            found = versions[0]
        if found.status != "READY":
            raise ModelNotFound(f"model {name} version {found.version} is {found.status}, not READY")
        location = client.get_model_version_download_uri(name, found.version)
    except MlflowException as error:
        raise ModelNotFound(f"cannot resolve {model_uri} in {tracking_uri}: {error.message}") from None
    tags = dict(found.tags or {})
    return ModelSource(name, str(found.version), location, tags.get(TAG), tags)


def fetch(source: ModelSource, destination: Path, tracking_uri: str | None) -> Path:
    """Copy the model's files into `destination`, a folder only this process uses, and return the model folder.

    The copy is what gets verified and then loaded, so nothing can change the files in between. The version's
    storage URI is downloaded, not models:/NAME/VERSION: MLflow adds a `registered_model_meta` file to a models:/
    download (and, for a local store without a destination, writes it into the store itself). Files on this
    machine are copied without MLflow, which a replica would otherwise import for this alone.
    """
    folder = _copy_or_download(source, destination, tracking_uri)
    if not (folder / "MLmodel").is_file():
        raise ModelNotFound(f"the files of {source.label} ({source.location}) are not an MLflow model: no MLmodel")
    return folder


def _copy_or_download(source: ModelSource, destination: Path, tracking_uri: str | None) -> Path:
    on_disk = sqlite_store.local_folder(source.location)
    if on_disk is not None:
        try:
            return sqlite_store.copy_folder(on_disk, destination)
        except OSError as error:
            raise ModelNotFound(f"cannot copy the files of {source.label} from {on_disk}: {error}") from None
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=source.location, dst_path=str(destination),
                                                        tracking_uri=tracking_uri))
    except (MlflowException, OSError) as error:
        raise ModelNotFound(f"cannot fetch the files of {source.label} from {source.location}: {error}") from None

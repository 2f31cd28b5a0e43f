"""The sqlite fast path resolves models:/ URIs exactly as MLflow's client does, and a replica loads without MLflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlspec.runtime.serving import registry, sqlite_store
from mlspec.runtime.serving.integrity import model_digest
from mlspec.runtime.serving.registry import ModelNotFound, resolve
from tests.runtime.test_serving_support import MODEL, IrisStore, copy_model, register, shared_store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> IrisStore:
    store = shared_store(tmp_path_factory)
    import mlflow

    client = mlflow.MlflowClient(store.tracking_uri)
    name = "fast-resolve"
    for _ in range(3):  # versions 1..3 of a model of its own, from copied files
        register(store.tracking_uri, copy_model(store, f"fast-{_}"), None,
                 {"mlspec.sha256": model_digest(store.folder)}, name=name)
    client.set_registered_model_alias(name, "blue", "2")
    client.delete_model_version(name, "3")  # soft-deleted: latest is 2 again
    return store


URIS = [f"models:/{MODEL}/1", f"models:/{MODEL}@champion", f"models:/{MODEL}@latest", f"models:/{MODEL}",
        "models:/fast-resolve/1", "models:/fast-resolve@blue", "models:/fast-resolve/latest", "models:/fast-resolve"]


@pytest.mark.parametrize("uri", URIS)
def test_same_answer_as_mlflow(iris: IrisStore, uri: str) -> None:
    match = registry._MODELS_URI.match(uri)
    assert match is not None
    fast = resolve(uri, iris.tracking_uri)
    slow = registry._resolve_with_mlflow(uri, iris.tracking_uri, match.group("name"), match.group("version"),
                                         match.group("alias"))
    assert fast == slow
    assert sqlite_store.local_folder(fast.location) is not None  # the files are copied, not fetched via MLflow


@pytest.mark.parametrize("uri", ["models:/fast-resolve/3", "models:/fast-resolve/9", "models:/fast-resolve@green",
                                 "models:/nothing-here", "models:/nothing-here/1"])
def test_missing_versions_refused_as_mlflow_refuses(iris: IrisStore, uri: str) -> None:
    match = registry._MODELS_URI.match(uri)
    assert match is not None
    with pytest.raises(ModelNotFound):
        resolve(uri, iris.tracking_uri)
    with pytest.raises(ModelNotFound):
        registry._resolve_with_mlflow(uri, iris.tracking_uri, match.group("name"), match.group("version"),
                                      match.group("alias"))


def test_other_stores_go_through_mlflow(tmp_path: Path) -> None:
    assert sqlite_store.lookup(f"sqlite:///{tmp_path / 'absent.db'}", MODEL, "1", None) is None
    assert sqlite_store.lookup("sqlite:///:memory:?cache=shared", MODEL, "1", None) is None
    assert sqlite_store.lookup("http://127.0.0.1:5000", MODEL, "1", None) is None
    (tmp_path / "other.db").write_bytes(b"not a database at all, just bytes" * 10)
    assert sqlite_store.lookup(f"sqlite:///{tmp_path / 'other.db'}", MODEL, "1", None) is None


def test_fetch_copies_then_verifies(iris: IrisStore, tmp_path: Path) -> None:
    source = resolve("models:/fast-resolve/2", iris.tracking_uri)
    folder = registry.fetch(source, tmp_path, iris.tracking_uri)
    assert folder.parent == tmp_path and (folder / "MLmodel").is_file()
    assert model_digest(folder) == source.expected_sha256


def test_replica_loads_without_importing_mlflow(iris: IrisStore) -> None:
    probe = ("import sys\nfrom mlspec.runtime.serving.loading import load\n"
             f"model = load('models:/{MODEL}/1', {iris.tracking_uri!r})\n"
             "print(model.flavor, 'mlflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["sklearn", "False"]

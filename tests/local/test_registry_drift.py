"""Registry drift read from a real MLflow sqlite store: deleted versions, moved aliases, emptied or replaced stores."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from mlspec.backends.local.registry_drift import registry_drift
from mlspec.plan import Drift, Record


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow store with its schema and nothing else, made once: creating one runs every migration."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}").search_experiments()
    return db


def _store(folder: Path, template: Path) -> tuple[str, Any]:
    from mlflow.tracking import MlflowClient

    folder.mkdir(parents=True)
    shutil.copy(template, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    return uri, MlflowClient(tracking_uri=uri, registry_uri=uri)


def _register(client: Any, name: str) -> tuple[str, int]:
    experiment = client.get_experiment_by_name("e") or client.get_experiment(client.create_experiment("e"))
    run = client.create_run(experiment.experiment_id).info.run_id
    if not client.search_registered_models(f"name='{name}'"):
        client.create_registered_model(name)
    return run, int(client.create_model_version(name, f"runs:/{run}/model", run).version)


@pytest.fixture
def store(tmp_path: Path, empty_store: Path) -> tuple[str, Any, list[Record]]:
    """A job that registered iris-clf version 1, its model, and an endpoint serving iris-clf@champion."""
    uri, client = _store(tmp_path / "ws", empty_store)
    run, version = _register(client, "iris-clf")
    client.set_registered_model_alias("iris-clf", "champion", str(version))
    records = [
        Record("job/train", "Job", "h1", {}, outputs={"run_id": run, "models": {"iris-clf": version}}),
        Record("model/iris-clf", "Model", "h2", {"job": "train"}, outputs={"version": version, "run_id": run}),
        Record("endpoint/iris", "Endpoint", "h3", {"deployments": {"blue": {"model": "iris-clf@champion"}}},
               outputs={"deployments": {"blue": {"version": version}}}),
    ]
    return uri, client, records


def test_a_store_as_recorded_has_no_drift(store: tuple[str, Any, list[Record]]) -> None:
    uri, _, records = store
    assert registry_drift(records, uri) == {}


def test_a_deleted_version_retrains_and_re_registers(store: tuple[str, Any, list[Record]]) -> None:
    uri, client, records = store
    client.delete_model_version("iris-clf", "1")
    found = registry_drift(records, uri)
    assert found["job/train"] == [Drift("iris-clf version 1 was deleted from the registry", "retrain")]
    assert found["model/iris-clf"] == [Drift("version 1 was deleted from the registry", "re-register")]
    assert found["endpoint/iris"] == [Drift("deployment blue: iris-clf@champion no longer exists (removed "
                                            "outside mlspec)")]  # MLflow drops the alias with the version


def test_a_moved_alias_redeploys(store: tuple[str, Any, list[Record]]) -> None:
    uri, client, records = store
    _, version = _register(client, "iris-clf")
    client.set_registered_model_alias("iris-clf", "champion", str(version))
    assert registry_drift(records, uri) == {
        "endpoint/iris": [Drift("deployment blue: iris-clf@champion moved 1 → 2 (outside mlspec)")]}


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda db: db.write_bytes(b""), "mlflow.db was emptied"),
    (lambda db: db.unlink(), "mlflow.db is missing (deleted or moved?)"),
])
def test_an_emptied_or_lost_store_recreates_jobs_and_models(store: tuple[str, Any, list[Record]], damage: Any,
                                                            reason: str) -> None:
    uri, _, records = store
    damage(Path(uri.removeprefix("sqlite:///")))
    found = registry_drift(records, uri)
    assert found["job/train"] == [Drift(reason, recreate=True)]
    assert found["model/iris-clf"] == [Drift(reason, recreate=True)]
    assert found["endpoint/iris"] == [Drift(f"the models it serves are gone: {reason}")]


def test_a_store_replaced_by_another_is_found_by_its_runs(store: tuple[str, Any, list[Record]],
                                                          tmp_path: Path, empty_store: Path) -> None:
    uri, _, records = store
    other_uri, other = _store(tmp_path / "other", empty_store)
    _register(other, "iris-clf")  # the same name and version number, another run
    other.set_registered_model_alias("iris-clf", "champion", "1")
    shutil.copy(other_uri.removeprefix("sqlite:///"), uri.removeprefix("sqlite:///"))
    found = registry_drift(records, uri)
    run = records[0].outputs["run_id"]
    assert found["job/train"] == [Drift(f"its run {run[:12]} is not in mlflow.db (emptied or replaced?)",
                                        recreate=True)]
    assert found["model/iris-clf"] == [Drift("version 1 in mlflow.db is another run's (replaced?)", recreate=True)]


def test_a_tracking_server_is_not_checked(store: tuple[str, Any, list[Record]]) -> None:
    _, _, records = store
    assert registry_drift(records, "http://127.0.0.1:9") == {}

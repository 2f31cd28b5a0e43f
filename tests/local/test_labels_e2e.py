"""Tags and descriptions on the local engine: on MLflow runs, experiments and registered models, in `mlspec status`,
and changed in place by `up` without retraining a job or restarting an endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.local.conftest import mlspec, status

pytestmark = pytest.mark.e2e

NOTE = "mlflow.note.content"


def _set(spec: Path, changes: dict[tuple[str, str | None], dict[str, Any]]) -> None:
    """Update documents of mlspec.yaml: (kind, name or None for the Workspace) -> fields (None removes one)."""
    path = spec / "mlspec.yaml"
    docs = list(yaml.safe_load_all(path.read_text()))
    for (kind, name), fields in changes.items():
        doc = next(d for d in docs if d["kind"] == kind and (name is None or d["name"] == name))
        for key, value in fields.items():
            if value is None:
                doc.pop(key, None)
            else:
                doc[key] = value
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def _mlflow(spec: Path) -> Any:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{(spec / '.mlspec' / 'mlflow.db').resolve()}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _runs(client: Any, job: str) -> list[Any]:
    experiment = client.get_experiment_by_name("iris")
    return list(client.search_runs([experiment.experiment_id], filter_string=f"tags.`mlspec.job` = '{job}'"))


def _pids(spec: Path) -> dict[str, int]:
    return {p["id"]: p["pid"] for p in status(spec)["processes"]}


def test_labels_reach_mlflow_and_status_and_change_in_place(iris: Path) -> None:
    with (iris / "mlspec.yaml").open("a") as file:
        file.write("---\nkind: Model\nname: iris-clf\njob: train\n")
    _set(iris, {("Workspace", None): {"tags": {"env": "demo", "cost": "a1"}},
                ("Job", "train"): {"tags": {"team": "ml"}, "description": "Baseline logistic regression"},
                ("Model", "iris-clf"): {"tags": {"owner": "ana"}, "description": "Iris classifier"},
                ("Endpoint", "iris"): {"tags": {"tier": "gold"}, "description": "Public iris scoring"},
                ("Compute", "cpu"): {"description": "Two jobs at a time"}})
    mlspec("up", str(iris), "--yes")

    client = _mlflow(iris)
    [run] = _runs(client, "train")
    assert run.data.tags["team"] == "ml" and run.data.tags[NOTE] == "Baseline logistic regression"
    assert "team" not in _runs(client, "train-forest")[0].data.tags  # another job's labels stay its own
    experiment = client.get_experiment_by_name("iris")
    assert experiment.tags["env"] == "demo" and experiment.tags[NOTE].startswith("Iris classifiers")
    model = client.get_registered_model("iris-clf")
    assert model.tags["owner"] == "ana" and model.description == "Iris classifier"
    assert client.get_model_version("iris-clf", "1").tags["owner"] == "ana"

    shown = status(iris)["resources"]
    assert shown["endpoint/iris"]["tags"] == {"tier": "gold"}
    assert shown["endpoint/iris"]["description"] == "Public iris scoring"
    assert shown["compute/cpu"]["description"] == "Two jobs at a time" and shown["compute/cpu"]["tags"] == {}
    text = mlspec("status", str(iris)).stdout.splitlines()
    at = next(i for i, line in enumerate(text) if line.startswith("endpoint/iris"))
    assert text[at + 1].strip() == "Public iris scoring"

    pids = _pids(iris)
    _set(iris, {("Workspace", None): {"tags": {"env": "demo"}},
                ("Job", "train"): {"tags": {"team": "research"}, "description": None},
                ("Model", "iris-clf"): {"tags": {"owner": "bo"}},
                ("Endpoint", "iris"): {"tags": {"tier": "silver"}}})
    planned = json.loads(mlspec("plan", str(iris), "--json").stdout)["changes"]
    changed = {c["id"]: (c["action"], c["verb"]) for c in planned if c["action"] != "noop"}
    assert changed == {"job/train": ("update", "relabel"), "job/train-forest": ("update", "relabel"),
                       "model/iris-clf": ("update", "relabel"), "endpoint/iris": ("update", "relabel")}
    assert "~ job/train" in mlspec("plan", str(iris)).stdout

    applied = mlspec("up", str(iris), "--yes").stdout
    assert "registered" not in applied and "[train]" not in applied  # nothing trained
    assert "✓ job/train" in applied and "relabelled" in applied
    [same] = _runs(client, "train")
    assert same.info.run_id == run.info.run_id
    assert same.data.tags["team"] == "research" and NOTE not in same.data.tags
    assert "cost" not in client.get_experiment_by_name("iris").tags
    model = client.get_registered_model("iris-clf")
    assert model.tags["owner"] == "bo" and len(client.search_model_versions("name='iris-clf'")) == 1
    assert client.get_model_version("iris-clf", "1").tags["owner"] == "bo"
    assert _pids(iris) == pids  # no replica or gateway restarted
    assert status(iris)["resources"]["endpoint/iris"]["tags"] == {"tier": "silver"}
    assert "No changes" in mlspec("up", str(iris), "--yes").stdout

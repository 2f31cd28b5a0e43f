"""Labels on a real MLflow store: set, changed and removed in place, never touching tags set by someone else."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlspec.runtime import labels, tracking
from tests.runtime.conftest import Store


def _run(store: Store, job: str, content_hash: str) -> str:
    experiment = tracking.ensure_experiment(store.tracking_uri, "labels", store.artifacts)
    return tracking.start_run(store.tracking_uri, experiment, {"mlspec.job": job, "mlspec.hash": content_hash})


def _model(store: Store, name: str, content_hash: str) -> int:
    client = tracking.client(store.tracking_uri)
    client.create_registered_model(name)
    run_id = _run(store, "trainer", content_hash)
    version = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id,
                                          tags={"mlspec.hash": content_hash, "mlspec.sha256": "0" * 64})
    return int(version.version)


def test_a_job_run_gets_tags_and_description_and_loses_only_what_mlspec_set(store: Store) -> None:
    run_id = _run(store, "train", "h1")
    client = tracking.client(store.tracking_uri)
    client.set_tag(run_id, "reviewed-by", "someone")  # not mlspec's: must survive every relabel
    assert labels.label_job_runs(store.tracking_uri, "train", "h1", {"team": "ml", "cost": "a1"},
                                 "Baseline logistic regression") == [run_id]
    tags = client.get_run(run_id).data.tags
    assert (tags["team"], tags["cost"], tags[labels.NOTE]) == ("ml", "a1", "Baseline logistic regression")

    labels.label_job_runs(store.tracking_uri, "train", "h1", {"team": "research"})
    tags = client.get_run(run_id).data.tags
    assert tags["team"] == "research" and "cost" not in tags and labels.NOTE not in tags
    assert tags["reviewed-by"] == "someone" and tags["mlspec.job"] == "train"
    assert json.loads(tags[labels.OWNED]) == ["team"]


def test_runs_of_another_hash_or_job_are_not_labelled(store: Store) -> None:
    other = _run(store, "train", "old-hash")
    assert labels.label_job_runs(store.tracking_uri, "train", "new-hash", {"team": "ml"}) == []
    assert "team" not in tracking.client(store.tracking_uri).get_run(other).data.tags


def test_an_unlabelled_object_is_left_untouched(store: Store) -> None:
    run_id = _run(store, "quiet", "h")
    labels.label_job_runs(store.tracking_uri, "quiet", "h", {})
    assert labels.OWNED not in tracking.client(store.tracking_uri).get_run(run_id).data.tags


def test_experiment_tags_and_note(store: Store) -> None:
    tracking.ensure_experiment(store.tracking_uri, "ws-exp", store.artifacts)
    assert labels.label_experiment(store.tracking_uri, "ws-exp", {"env": "prod"}, "The demo workspace")
    client = tracking.client(store.tracking_uri)
    tags = client.get_experiment_by_name("ws-exp").tags
    assert (tags["env"], tags[labels.NOTE]) == ("prod", "The demo workspace")
    labels.label_experiment(store.tracking_uri, "ws-exp", {}, "")
    tags = client.get_experiment_by_name("ws-exp").tags
    assert "env" not in tags and labels.NOTE not in tags
    assert not labels.label_experiment(store.tracking_uri, "no-such-experiment", {"env": "prod"})


def test_registered_model_and_its_versions(store: Store) -> None:
    version = _model(store, "clf", "job-hash")
    client = tracking.client(store.tracking_uri)
    client.update_registered_model("clf", description="")
    assert labels.label_model(store.tracking_uri, "clf", {"owner": "ana"}, "Iris classifier",
                              content_hash="job-hash")
    model = client.get_registered_model("clf")
    assert model.tags["owner"] == "ana" and model.description == "Iris classifier"
    assert client.get_model_version("clf", str(version)).tags["owner"] == "ana"

    labels.label_model(store.tracking_uri, "clf", {}, "", versions=[version])
    model = client.get_registered_model("clf")
    assert "owner" not in model.tags and not model.description  # mlspec set them, so mlspec clears them
    version_tags = client.get_model_version("clf", str(version)).tags
    assert "owner" not in version_tags and version_tags["mlspec.hash"] == "job-hash"
    assert not labels.label_model(store.tracking_uri, "never-registered", {"owner": "ana"})


def test_a_description_set_by_someone_else_stays(store: Store) -> None:
    _model(store, "shared", "h")
    client = tracking.client(store.tracking_uri)
    client.update_registered_model("shared", description="written in the UI")
    labels.label_model(store.tracking_uri, "shared", {"owner": "ana"})
    assert client.get_registered_model("shared").description == "written in the UI"


def test_the_labeller_command_applies_a_labels_file(store: Store, tmp_path: Path) -> None:
    run_id = _run(store, "cli-job", "cli-hash")
    _model(store, "cli-model", "cli-hash")
    file = tmp_path / "labels.json"
    labels.LabelsRun(tracking_uri=store.tracking_uri,
                     experiments={"labels": labels.Labels(tags={"ws": "demo"})},
                     jobs=[labels.JobLabels(job="cli-job", content_hash="cli-hash", description="nightly")],
                     models=[labels.ModelLabels(name="cli-model", content_hash="cli-hash", tags={"tier": "gold"})],
                     ).dump(file)
    done = subprocess.run([sys.executable, "-m", "mlspec.runtime.labels", str(file)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    client = tracking.client(store.tracking_uri)
    assert client.get_run(run_id).data.tags[labels.NOTE] == "nightly"
    assert client.get_registered_model("cli-model").tags["tier"] == "gold"
    assert client.get_experiment_by_name("labels").tags["ws"] == "demo"

    file.write_text("{}")
    broken = subprocess.run([sys.executable, "-m", "mlspec.runtime.labels", str(file)], capture_output=True,
                            text=True, timeout=60)
    assert broken.returncode == 1 and "tracking_uri" in broken.stderr and "Traceback" not in broken.stderr


def test_a_tag_another_step_already_removed_is_not_an_error(store: Store) -> None:
    """Two jobs of one experiment relabel it at once: both may remove the same tag; the second finds it gone."""
    experiment = tracking.ensure_experiment(store.tracking_uri, "shared-exp", store.artifacts)
    labels.label_experiment(store.tracking_uri, "shared-exp", {"cost": "a1"})
    stale = tracking.client(store.tracking_uri).get_experiment(experiment)  # what the slower step read
    tracking.client(store.tracking_uri).delete_experiment_tag(experiment, "cost")  # the faster step's removal
    delete, _ = labels._changes(stale.tags, {})
    assert delete == ["cost"]
    for key in delete:
        labels._forget(tracking.client(store.tracking_uri).delete_experiment_tag, experiment, key)
    assert "cost" not in tracking.client(store.tracking_uri).get_experiment(experiment).tags


def _label_at_once(store: Store, name: str, threads: int = 6) -> list[Exception]:
    """`threads` steps label the experiment `name` with the same new tags at the same moment; their errors."""
    import threading

    start, failures = threading.Barrier(threads), []

    def label() -> None:
        start.wait()
        try:
            labels.label_experiment(store.tracking_uri, name, {"env": "demo", "team": "ml", "cost": "a"}, "x")
        except Exception as error:
            failures.append(error)

    running = [threading.Thread(target=label) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return failures


def test_steps_labelling_one_experiment_at_once_all_succeed(store: Store) -> None:
    """Two jobs of one workspace label its experiment in parallel: MLflow's store looks for a tag row and then
    inserts it, so the later insert of the same new key fails unless it is set again."""
    for round_ in range(4):
        name = f"race-{round_}"
        tracking.ensure_experiment(store.tracking_uri, name, store.artifacts)
        failures = _label_at_once(store, name)
        assert not failures, failures[0]
        assert tracking.client(store.tracking_uri).get_experiment_by_name(name).tags["env"] == "demo"

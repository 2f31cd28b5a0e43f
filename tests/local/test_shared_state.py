"""A shared state location, a folder or an S3 bucket (a real moto server): the snapshot's versioned format and atomic
publication, and the lock (one winner among racing processes, its holder's details, released only by its holder, a
stale one broken only with proof or --force)."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mlspec.backends.local.shared_lock import LockHeld, LockInfo, acquire, break_lock, read_lock, release
from mlspec.backends.local.shared_state import SharedState
from mlspec.backends.local.shared_store import FolderStore, Store, store_at
from mlspec.backends.local.snapshot import (
    SNAPSHOT_VERSION,
    SnapshotError,
    decode,
    encode,
    new_snapshot,
    read_snapshot,
    write_snapshot,
)
from mlspec.backends.local.state import StateStore
from mlspec.plan import Record
from tests.s3_server import s3_endpoint, s3_env  # noqa: F401  (fixtures)

RECORDS = {
    "data/rows": Record("data/rows", "Data", "h1", {"name": "rows", "path": "rows.csv"}, {"rows.csv": "f1"}, {},
                        {"version": "abc"}, "ready"),
    "job/train": Record("job/train", "Job", "h2", {"name": "train"}, {}, {"data/rows": "h1"}, {"run_id": "r1"},
                        "failed"),
}


def test_a_snapshot_round_trips_with_its_version_and_who_published_it() -> None:
    snapshot = new_snapshot("iris", RECORDS, "lineage-1", 7)
    data = json.loads(encode(snapshot))
    assert (data["version"], data["workspace"], data["lineage"], data["serial"]) == (SNAPSHOT_VERSION, "iris",
                                                                                     "lineage-1", 7)
    assert data["by"] == snapshot.by and "@" in data["by"] and data["published_at"].endswith("+00:00")
    assert [r["id"] for r in data["records"]] == ["data/rows", "job/train"]
    assert decode(encode(snapshot), "x") == snapshot


@pytest.mark.parametrize(("text", "says"), [
    ("{not json", "not JSON"),
    ('{"workspace": "iris"}', "no 'version'"),
    ('{"version": 99, "records": []}', "newer mlspec (snapshot version 99"),
    ('{"version": 1, "workspace": "iris", "published_at": "t", "by": "b", "records": [{"kind": "Data"}]}',
     "is not a published mlspec state"),
])
def test_a_damaged_or_newer_snapshot_is_refused_with_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(SnapshotError, match=r"shared/iris\.json") as raised:
        decode(text, "shared/iris.json")
    assert says in str(raised.value)


@pytest.fixture(params=["folder", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A state location of each kind: a folder, and a fresh prefix of a bucket on a real S3 endpoint."""
    if request.param == "folder":
        return str(tmp_path / "share")
    return str(request.getfixturevalue("s3_env"))


@pytest.fixture
def store(location: str) -> Store:
    return store_at(location)


def _leftovers(store: Store) -> list[str]:
    """Partial files a folder store left behind (an S3 PUT leaves none by construction)."""
    if isinstance(store, FolderStore) and store.folder.exists():
        return [p.name for p in store.folder.iterdir() if p.name.startswith(".")]
    return []


def test_a_snapshot_round_trips_through_the_store(store: Store) -> None:
    assert read_snapshot(store, "iris.json") is None  # nothing published: nothing deployed
    write_snapshot(store, "iris.json", new_snapshot("iris", RECORDS, "l", 1))
    write_snapshot(store, "iris.json", new_snapshot("iris", RECORDS, "l", 2))
    published = read_snapshot(store, "iris.json")
    assert published is not None and published.serial == 2 and published.records == RECORDS
    stored = store.read("iris.json")
    assert stored is not None and decode(stored.data.decode(), "x") == published
    assert _leftovers(store) == []


def test_publishing_replaces_the_snapshot_whole_and_leaves_no_partial_file(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "share")
    path = store.folder / "iris.json"
    write_snapshot(store, "iris.json", new_snapshot("iris", RECORDS, "l", 1))
    write_snapshot(store, "iris.json", new_snapshot("iris", {}, "l", 2))
    assert read_snapshot(store, "iris.json") == decode(path.read_text(), str(path))
    assert os.listdir(path.parent) == ["iris.json"]


def test_a_publication_that_fails_keeps_the_previous_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FolderStore(tmp_path)
    path = tmp_path / "iris.json"
    write_snapshot(store, "iris.json", new_snapshot("iris", RECORDS, "l", 1))
    original = path.read_text()

    def disk_full(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # the disk fills while the new snapshot is being written
    with pytest.raises(OSError, match="No space left"):
        write_snapshot(store, "iris.json", new_snapshot("iris", {}, "l", 2))
    assert path.read_text() == original and os.listdir(tmp_path) == ["iris.json"]


def _race(location: str, name: str, start: object, results: object) -> None:
    store = store_at(location)  # its own client, as another machine would have
    start.wait()  # type: ignore[attr-defined]
    try:
        acquire(store, name, "mlspec up")
        results.put(os.getpid())  # type: ignore[attr-defined]
    except LockHeld:
        results.put(0)  # type: ignore[attr-defined]


def test_of_processes_racing_for_the_lock_exactly_one_wins(location: str, store: Store) -> None:
    context = multiprocessing.get_context("fork")
    for round_ in range(5):
        lock = f"iris-{round_}.lock"
        start, results = context.Barrier(4), context.Queue()
        racers = [context.Process(target=_race, args=(location, lock, start, results)) for _ in range(4)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(30)
        outcomes = [results.get(timeout=5) for _ in racers]
        winners = [pid for pid in outcomes if pid]
        assert len(winners) == 1, outcomes
        holder = read_lock(store, lock)
        assert holder is not None and holder.pid == winners[0] and holder.command == "mlspec up"
        assert _leftovers(store) == []  # no partial file left


def test_a_held_lock_names_its_holder_and_a_waiter_gets_it_once_released(store: Store) -> None:
    lock = "iris.lock"
    mine = acquire(store, lock, "mlspec down")
    with pytest.raises(LockHeld) as raised:
        acquire(store, lock, "mlspec up", timeout=0.3)
    holder = raised.value.holder
    assert holder is not None and holder.id == mine.id and holder.pid == os.getpid()
    assert f"`mlspec down` by {holder.user} on {holder.host} (pid {os.getpid()}) since " in holder.describe()
    assert not holder.gone()  # this process runs
    assert release(store, lock, mine) and not store.exists(lock)
    assert acquire(store, lock, "mlspec up", timeout=0.3).command == "mlspec up"


def test_releasing_leaves_a_lock_that_someone_else_took_after_breaking_ours(store: Store) -> None:
    lock = "iris.lock"
    mine = acquire(store, lock, "mlspec up")
    break_lock(store, lock, force=True)
    theirs = acquire(store, lock, "mlspec up")
    assert not release(store, lock, mine) and read_lock(store, lock) == theirs


def test_a_lock_replaced_since_it_was_read_is_not_deleted(store: Store) -> None:
    """The delete names the version it read: a lock broken and taken again in between survives (on S3 a conditional
    delete, If-Match; on a folder the file's identity, checked just before the unlink)."""
    acquire(store, "iris.lock", "mlspec up")
    read = store.read("iris.lock")
    assert read is not None
    break_lock(store, "iris.lock", force=True)
    theirs = acquire(store, "iris.lock", "mlspec up")
    assert not store.delete("iris.lock", read.tag) and read_lock(store, "iris.lock") == theirs


def _lock_of_ended_process(location: str, lock: str) -> LockInfo:
    code = ("import sys; from mlspec.backends.local.shared_lock import acquire; "
            "from mlspec.backends.local.shared_store import store_at; "
            "acquire(store_at(sys.argv[1]), sys.argv[2], 'mlspec up')")
    subprocess.run([sys.executable, "-c", code, location, lock], check=True,
                   env={**os.environ, "PYTHONPATH": os.getcwd()})
    holder = read_lock(store_at(location), lock)
    assert holder is not None
    return holder


def test_a_stale_lock_of_this_machine_is_broken_without_force_and_another_machines_only_with_it(
        location: str, store: Store) -> None:
    lock = "iris.lock"
    ended = _lock_of_ended_process(location, lock)
    assert ended.gone()  # same boot, same pid namespace, and its pid is gone
    with pytest.raises(LockHeld):
        acquire(store, lock, "mlspec up", timeout=0.3)  # never taken over silently: a person breaks it
    assert break_lock(store, lock, force=False) == ended and not store.exists(lock)

    elsewhere = replace(ended, host="ci-runner-7", machine="another-boot pid:[1]")
    store.write(lock, json.dumps(elsewhere.__dict__).encode())
    assert not elsewhere.gone()  # its pids are out of sight: it may still run
    with pytest.raises(LockHeld) as raised:
        break_lock(store, lock, force=False)
    assert raised.value.holder == elsewhere and store.exists(lock)
    assert break_lock(store, lock, force=True) == elsewhere and not store.exists(lock)


def test_an_unreadable_lock_counts_as_held_and_is_removed_only_with_force(store: Store) -> None:
    lock = "iris.lock"
    store.write(lock, b"{half a lo")
    with pytest.raises(LockHeld) as raised:
        acquire(store, lock, "mlspec up", timeout=0.3)
    assert raised.value.holder is None
    with pytest.raises(LockHeld):
        break_lock(store, lock, force=False)
    assert break_lock(store, lock, force=True) is None and not store.exists(lock)


def test_a_location_refuses_to_publish_over_another_workspaces_deployment(location: str, tmp_path: Path) -> None:
    shared = SharedState(store_at(location), "iris")
    first, second = tmp_path / "a" / "state.db", tmp_path / "b" / "state.db"
    for db in (first, second):
        db.parent.mkdir()
        store = StateStore(db)
        store.put(RECORDS["data/rows"])
        store.close()
    assert shared.adoption_problem(first) is None  # nothing published yet
    published = shared.publish(first)
    assert published.records == {"data/rows": RECORDS["data/rows"]} and published.serial == 1
    assert shared.adoption_problem(first) is None  # the workspace that published it
    problem = shared.adoption_problem(second)
    assert problem is not None and "1 resource(s) deployed from another workspace" in problem
    assert shared.adoption_problem(tmp_path / "c" / "state.db") is not None  # no workspace here yet: not that one
    assert not (tmp_path / "c").exists()


def test_without_boto3_an_s3_location_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlspec.backends.local.shared_store import StoreError

    monkeypatch.setitem(sys.modules, "boto3", None)  # as if it were not installed: `import boto3` raises ImportError
    with pytest.raises(StoreError, match=r"needs boto3, which is not installed: pip install 'mlspec\[s3\]'"):
        store_at("s3://mlspec-state/ci")


@pytest.mark.usefixtures("s3_env")
def test_a_bucket_that_does_not_exist_is_reported_with_where_boto3_reads_its_configuration() -> None:
    from mlspec.backends.local.shared_store import StoreError

    store = store_at("s3://no-such-bucket-here/ci")
    with pytest.raises(StoreError) as raised:
        store.read("iris.json")
    assert "cannot read s3://no-such-bucket-here/ci/iris.json: " in str(raised.value)
    assert "NoSuchBucket" in str(raised.value) and "AWS_ENDPOINT_URL" in str(raised.value)
    with pytest.raises(StoreError, match=r"cannot create s3://no-such-bucket-here/ci/iris\.lock"):
        acquire(store, "iris.lock", "mlspec up")


class _WithoutConditionalDeletes:
    """A real S3 client in front of a store that answers a conditional delete with 501, as some S3-compatible stores
    do."""

    def __init__(self, client: object) -> None:
        self.client = client

    def __getattr__(self, name: str) -> object:
        return getattr(self.client, name)

    def delete_object(self, **request: object) -> object:
        from botocore.exceptions import ClientError

        if "IfMatch" in request:
            raise ClientError({"Error": {"Code": "NotImplemented", "Message": "conditional delete"}}, "DeleteObject")
        return self.client.delete_object(**request)  # type: ignore[attr-defined]


@pytest.mark.usefixtures("s3_env")
def test_a_store_without_conditional_deletes_still_releases_only_its_own_lock() -> None:
    import boto3

    from mlspec.backends.local.s3_store import S3Store

    store = S3Store("mlspec-state", "no-if-match", _WithoutConditionalDeletes(boto3.client("s3")))
    mine = acquire(store, "iris.lock", "mlspec up")
    assert release(store, "iris.lock", mine) and not store.exists("iris.lock")
    acquire(store, "iris.lock", "mlspec up")
    read = store.read("iris.lock")
    assert read is not None
    break_lock(store, "iris.lock", force=True)
    theirs = acquire(store, "iris.lock", "mlspec up")
    assert not store.delete("iris.lock", read.tag) and read_lock(store, "iris.lock") == theirs

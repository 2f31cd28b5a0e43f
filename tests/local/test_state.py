"""The state store: records, serial, a lock that excludes a second apply, clear errors on bad files."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path

import pytest

from mlspec.backends.local.state import SCHEMA_VERSION, LockTimeout, StateError, StateStore, exclusive
from mlspec.plan import Record


def test_put_read_remove_and_serial(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    assert store.serial == 0 and len(store.meta("lineage")) == 32
    store.put(Record("data/iris", "Data", "abc", {"path": "x"}, {"x": "1"}, {}, {"version": "abc"}))
    assert store.serial == 1
    reopened = StateStore(tmp_path / "state.db")
    assert reopened.records()["data/iris"].outputs == {"version": "abc"}
    reopened.remove("data/iris")
    assert reopened.records() == {} and reopened.serial == 2


def test_corrupt_state_is_a_clear_error_and_the_file_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match=r"not a readable mlspec state.*Nothing was changed"):
        StateStore(path)
    assert path.read_bytes() == b"this is not sqlite" * 100


def test_newer_state_is_refused(tmp_path: Path) -> None:
    StateStore(tmp_path / "state.db").close()
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(StateError, match="newer mlspec"):
        StateStore(tmp_path / "state.db")


def test_backup_is_a_readable_copy(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.put(Record("compute/cpu", "Compute", "h", {}, {}, {}, {}))
    store.backup()
    assert "compute/cpu" in StateStore(tmp_path / "state.db.bak").records()


def _hold(lock: str, seconds: float) -> None:
    with exclusive(Path(lock), timeout=0):
        time.sleep(seconds)


def test_second_holder_fails_clearly_then_waits(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    holder = multiprocessing.get_context("fork").Process(target=_hold, args=(str(lock), 1.0))
    holder.start()
    time.sleep(0.3)
    with pytest.raises(LockTimeout, match=f"pid {holder.pid}"), exclusive(lock, timeout=0):
        pass
    started = time.monotonic()
    with exclusive(lock, timeout=10):
        assert time.monotonic() - started > 0.2  # it waited for the holder to finish
    holder.join()


def _hold_briefly(lock: str, seconds: float) -> None:
    with exclusive(Path(lock), timeout=0, brief=True):
        time.sleep(seconds)


def test_a_brief_holder_is_waited_for_even_without_a_timeout(tmp_path: Path) -> None:
    """The autoscaler holds the lock for milliseconds to push a change: an `up` (timeout 0) waits, never fails."""
    lock = tmp_path / "lock"
    holder = multiprocessing.get_context("fork").Process(target=_hold_briefly, args=(str(lock), 0.5))
    holder.start()
    deadline = time.monotonic() + 5
    while "brief" not in (lock.read_text() if lock.exists() else ""):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with exclusive(lock, timeout=0):
        assert "brief" not in lock.read_text()
    holder.join()


def test_lock_is_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    holder = multiprocessing.get_context("fork").Process(target=_hold, args=(str(lock), 60))
    holder.start()
    time.sleep(0.3)
    holder.kill()
    holder.join()
    with exclusive(lock, timeout=1):
        pass

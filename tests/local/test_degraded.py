"""Which deployments are degraded, and why in the replica's own words, from the supervisor's rows and logs."""

from __future__ import annotations

from pathlib import Path

from mlspec.backends.local.degraded import CRASH_LOOP, degraded, last_words
from mlspec.backends.local.state import ProcessRow
from mlspec.plan import Record

ENDPOINT = Record("endpoint/iris", "Endpoint", "h", {}, outputs={
    "url": "http://127.0.0.1:1", "deployments": {
        "blue": {"processes": ["endpoint/iris/blue/g/0", "endpoint/iris/blue/g/1"]},
        "green": {"processes": ["endpoint/iris/green/g/0"]}}})


def row(tmp_path: Path, process_id: str, log: str = "", **observed: object) -> ProcessRow:
    path = tmp_path / (process_id.replace("/", "-") + ".log")
    path.write_text(log)
    return ProcessRow(id=process_id, owner="endpoint/iris", argv=[], env={}, cwd="", log=str(path),
                      health="http://127.0.0.1:1/health", **observed)  # type: ignore[arg-type]


def test_running_replicas_are_not_degraded(tmp_path: Path) -> None:
    rows = [row(tmp_path, p, state="running", pid=1, restarts=4) for p in
            ("endpoint/iris/blue/g/0", "endpoint/iris/blue/g/1", "endpoint/iris/green/g/0", "endpoint/iris/gateway")]
    assert degraded([ENDPOINT], rows) == []


def test_a_crash_loop_is_named_with_the_servers_own_reason(tmp_path: Path) -> None:
    log = ("==> mlspec: endpoint/iris/blue/g/1 starting (1.0)\nloading\n"
           "mlspec-serve: error: model iris-clf version 1: the sha256 digest does not match\n"
           "==> mlspec: endpoint/iris/blue/g/1 exited with 1\n")
    rows = [row(tmp_path, "endpoint/iris/blue/g/0", state="running", pid=1),
            row(tmp_path, "endpoint/iris/blue/g/1", log, state="restarting", restarts=7, streak=CRASH_LOOP,
                last_exit=1),
            row(tmp_path, "endpoint/iris/green/g/0", "Traceback\nKeyError: 'x'\n", state="restarting", restarts=1,
                streak=1, last_exit=1)]
    found = degraded([ENDPOINT], rows)
    assert [(d.resource, d.deployment) for d in found] == [("endpoint/iris", "blue"), ("endpoint/iris", "green")]
    assert found[0].reason == ("replica 1 is crash-looping (exited 3 times in a row, last with 1): model iris-clf "
                               "version 1: the sha256 digest does not match")
    assert found[1].reason == "replica 0 is restarting (exited with 1): KeyError: 'x'"
    assert str(found[0]).startswith("endpoint/iris deployment 'blue' is degraded: replica 1 is crash-looping")


def test_a_replica_started_again_after_a_crash_is_degraded_until_it_answers(tmp_path: Path) -> None:
    rows = [row(tmp_path, "endpoint/iris/blue/g/0", state="running", pid=1, streak=2, last_exit=1)]
    assert [d.reason for d in degraded([ENDPOINT], rows)] == ["replica 0 is starting again (exited with 1)"]


def test_released_and_foreign_rows_are_left_out(tmp_path: Path) -> None:
    rows = [row(tmp_path, "endpoint/iris/blue/g/0", state="restarting", desired=False, streak=5),
            row(tmp_path, "endpoint/other/blue/g/0", state="restarting", streak=5)]
    assert degraded([ENDPOINT], rows) == []


def test_last_words_of_a_missing_log_are_empty(tmp_path: Path) -> None:
    assert last_words(str(tmp_path / "none.log")) == ""

"""run_command: environment, logging, timeout, retries and process-group cleanup, on real processes."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from mlspec.runtime.execute import TAIL_LINES, run_command
from mlspec.runtime.jobrun import JobRunError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): it has exited, only its parent has not reaped it yet.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_the_command_sees_mlflow_and_job_variables(make_run, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_RUN_ID", "inherited-must-not-leak")
    bin_dir = tmp_path / "venv-bin"
    bin_dir.mkdir()
    run = make_run(
        'echo "$MLFLOW_TRACKING_URI|$MLFLOW_RUN_ID|$MLFLOW_EXPERIMENT_NAME|$GREETING|$PYTHONUNBUFFERED|$PWD";'
        ' echo "${PATH%%:*}"',
        env={"GREETING": "hi"}, path_prefix=str(bin_dir),
    )
    lines: list[str] = []

    result = run_command(run, "run123", on_line=lines.append)

    assert result.ok and result.attempts == 1
    assert result.log_tail == [f"{run.tracking_uri}|run123|tests|hi|1|{tmp_path}", str(bin_dir)]
    assert run_command(run, None).log_tail[0].split("|")[1] == ""  # no run id: none inherited either


def test_output_goes_to_the_log_and_the_callback_line_by_line(make_run, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "job.log"
    log.parent.mkdir()
    log.write_text("earlier run\n")
    run = make_run("echo out; echo err >&2; printf 'no newline'", log_file=str(log))
    lines: list[str] = []

    result = run_command(run, None, on_line=lines.append)

    text = log.read_text()
    assert text.startswith("earlier run\n==> mlspec: job 'job' attempt 1 of 1 at ")  # appended, with a header
    assert "out\nerr\nno newline\n==> mlspec: exit code 0 after" in text
    assert [line for line in lines if not line.startswith("==> mlspec")] == ["out", "err", "no newline"]
    assert result.log_tail == ["out", "err", "no newline"]


def test_a_failure_keeps_the_last_lines_for_the_error_message(make_run) -> None:
    run = make_run("for i in $(seq 1 50); do echo line $i; done; echo 'ValueError: boom' >&2; exit 3")

    result = run_command(run, None)

    assert result.exit_code == 3 and not result.ok
    assert len(result.log_tail) == TAIL_LINES
    assert result.log_tail[-1] == "ValueError: boom"
    assert result.log_tail[0] == "line 32"


def test_a_callback_that_raises_is_dropped_and_the_job_finishes(make_run, tmp_path: Path) -> None:
    def broken(line: str) -> None:
        raise RuntimeError("display gone")

    result = run_command(make_run("seq 1 1000"), None, on_line=broken)

    assert result.ok and result.log_tail[-1] == "1000"
    assert "log callback failed and was dropped" in (tmp_path / "work" / "job.log").read_text()


def test_timeout_stops_the_whole_process_group(make_run, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    # A grandchild in the background plus a foreground sleep: both must go.
    run = make_run(f"sleep 60 & echo $! > {pid_file}; sleep 60", timeout=1, retries=2)

    started = time.monotonic()
    result = run_command(run, None)
    took = time.monotonic() - started

    assert result.timed_out and not result.ok
    assert result.attempts == 1  # a timeout is not retried
    assert took < 3, f"took {took:.1f} s to stop a 1 s timeout"
    assert not _alive(int(pid_file.read_text()))
    assert "timed out after 1 s" in (tmp_path / "work" / "job.log").read_text()


def test_a_process_ignoring_sigterm_is_killed_after_the_grace(make_run, monkeypatch) -> None:
    monkeypatch.setattr("mlspec.runtime.execute.KILL_GRACE_S", 0.5)
    run = make_run("trap '' TERM; echo ready; while true; do sleep 0.05; done", timeout=0.5)

    started = time.monotonic()
    result = run_command(run, None)

    assert result.timed_out and time.monotonic() - started < 3


def test_retries_until_success_with_fresh_outputs(make_run, tmp_path: Path) -> None:
    marker, out = tmp_path / "tried-once", tmp_path / "work" / "out"
    run = make_run(
        f"test ! -e ${{{{outputs.out}}}}/stale || exit 9;"  # an attempt never sees the previous one's files
        f" touch ${{{{outputs.out}}}}/stale; echo attempt $MLSPEC_ATTEMPT;"
        f" if [ ! -e {marker} ]; then touch {marker}; echo failing; exit 1; fi",
        retries=3, outputs={"out": {"path": str(out)}},
    )

    result = run_command(run, None)

    assert result.ok and result.attempts == 2
    assert result.log_tail == ["attempt 2"]  # the tail is the last attempt's
    log = (tmp_path / "work" / "job.log").read_text()
    assert "attempt 1 of 4" in log and "attempt 2 of 4" in log and "exit code 1 after" in log


def test_the_timeout_bounds_all_attempts_together(make_run) -> None:
    started = time.monotonic()
    result = run_command(make_run("sleep 0.4; exit 1", timeout=1, retries=10), None)

    assert result.timed_out and 2 <= result.attempts <= 3
    assert time.monotonic() - started < 2


def test_retries_run_out(make_run) -> None:
    result = run_command(make_run("echo nope; exit 4", retries=2), None)

    assert result.exit_code == 4 and result.attempts == 3


def test_a_background_process_left_behind_neither_hangs_nor_survives(make_run, tmp_path: Path) -> None:
    pid_file = tmp_path / "orphan.pid"
    run = make_run(f"sleep 60 & echo $! > {pid_file}; echo done")  # the orphan holds the log pipe open

    started = time.monotonic()
    result = run_command(run, None)

    assert result.ok and result.log_tail == ["done"]
    assert time.monotonic() - started < 3
    assert not _alive(int(pid_file.read_text()))


def test_stop_event_cancels(make_run) -> None:
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()

    started = time.monotonic()
    result = run_command(make_run("sleep 60", retries=2), None, stop=stop)

    assert result.cancelled and result.attempts == 1 and not result.ok
    assert time.monotonic() - started < 3


def test_a_missing_code_folder_is_a_user_error(make_run, tmp_path: Path) -> None:
    with pytest.raises(JobRunError, match=r"code folder .*nowhere does not exist"):
        run_command(make_run("true", code=str(tmp_path / "nowhere")), None)


def test_a_missing_program_is_exit_127_with_the_reason_in_the_tail(make_run) -> None:
    result = run_command(make_run("no-such-program --flag"), None)

    assert result.exit_code == 127
    assert "no-such-program: command not found" in result.log_tail[-1]


def test_running_adds_little_over_the_command_itself(make_run) -> None:
    # A loose guard, not a benchmark (bench/training_overhead.py measures): `true` costs a bash start.
    run = make_run("true")
    run_command(run, None)
    started = time.monotonic()
    for _ in range(5):
        assert run_command(run, None).ok
    assert (time.monotonic() - started) / 5 < 0.25

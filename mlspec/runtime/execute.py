"""Run a job's command: substituted, in its own process group, logged line by line, with a timeout and retries."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import IO

from mlspec.runtime.jobrun import JobRun, JobRunError, prepare_output, substitute
from mlspec.runtime.launch import job_argv
from mlspec.runtime.procfs import live_processes
from mlspec.runtime.watchdog import Lifeline

TAIL_LINES = 20
KILL_GRACE_S = 5.0
# A line longer than this is passed on in pieces: a progress bar redrawn with '\r' never ends its line.
MAX_LINE_BYTES = 64 * 1024
# How often a wait checks the caller's stop event; the command's own exit wakes the wait at once.
STOP_POLL_S = 0.1

LineCallback = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ExecResult:
    """How the command went: the last attempt's exit code (negative: killed by that signal) and log tail."""

    exit_code: int | None
    attempts: int
    duration_s: float
    log_tail: list[str] = field(default_factory=list)
    timed_out: bool = False
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.cancelled


def command_env(run: JobRun, run_id: str | None, attempt: int = 1) -> dict[str, str]:
    """The command's environment: ours, the job's variables, then what mlspec and MLflow need (those win)."""
    env = dict(os.environ)
    env.update(run.env)
    # A run id inherited from whatever started us must never leak into a job that has none of its own.
    env.pop("MLFLOW_RUN_ID", None)
    if run_id:
        env["MLFLOW_RUN_ID"] = run_id
    env["MLFLOW_TRACKING_URI"] = run.command_tracking_uri or run.tracking_uri
    env["MLFLOW_EXPERIMENT_NAME"] = run.experiment
    env["MLSPEC_JOB"] = run.job
    env["MLSPEC_ATTEMPT"] = str(attempt)
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the log as they are printed, not when a buffer fills
    if run.path_prefix:
        env["PATH"] = run.path_prefix + os.pathsep + env.get("PATH", os.defpath)
    return env


def run_command(
    run: JobRun,
    run_id: str | None,
    on_line: LineCallback | None = None,
    stop: threading.Event | None = None,
) -> ExecResult:
    """Run the job's command until it succeeds, runs out of retries or time, or `stop` is set.

    The timeout bounds the whole job (all attempts); a timed-out or stopped attempt is not retried.
    Output places are emptied before every attempt, so a retry (or a re-used workdir) never sees stale files.
    """
    command = substitute(run.command, run)
    if run.code is not None and not os.path.isdir(run.code):
        raise JobRunError(f"job '{run.job}': code folder {run.code} does not exist")
    deadline = time.monotonic() + run.timeout if run.timeout else None
    started = time.monotonic()
    os.makedirs(os.path.dirname(run.log_path), exist_ok=True)
    attempts, tail, outcome = 0, collections.deque[str](maxlen=TAIL_LINES), _Outcome(None)
    # Unbuffered: `mlspec logs -f` and a crash mid-job both see every line already written.
    with open(run.log_path, "ab", buffering=0) as log:
        emit = _Emitter(log, on_line)
        for attempt in range(1, run.retries + 2):
            if deadline is not None and time.monotonic() >= deadline:  # failed attempts used up the time
                outcome.timed_out = True
                emit.note(f"==> mlspec: timed out after {run.timeout:g} s; no attempt left")
                break
            attempts = attempt
            for output in run.outputs.values():
                prepare_output(output)
            tail.clear()
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            emit.note(f"==> mlspec: job '{run.job}' attempt {attempt} of {run.retries + 1} at {stamp}")
            began = time.monotonic()
            outcome = _attempt(command, run, run_id, attempt, emit, tail, deadline, stop)
            took = time.monotonic() - began
            if outcome.timed_out:
                emit.note(f"==> mlspec: timed out after {run.timeout:g} s; the job's processes were stopped")
            elif outcome.cancelled:
                emit.note(f"==> mlspec: cancelled after {took:.2f} s; the job's processes were stopped")
            else:
                emit.note(f"==> mlspec: exit code {outcome.exit_code} after {took:.2f} s")
            if outcome.exit_code == 0 or outcome.timed_out or outcome.cancelled:
                break
    return ExecResult(
        exit_code=outcome.exit_code,
        attempts=attempts,
        duration_s=time.monotonic() - started,
        log_tail=list(tail),
        timed_out=outcome.timed_out,
        cancelled=outcome.cancelled,
    )


@dataclass(slots=True)
class _Outcome:
    exit_code: int | None
    timed_out: bool = False
    cancelled: bool = False


class _Emitter:
    """Writes lines to the log file and hands them to the caller's callback (which may not break the pump)."""

    def __init__(self, log: IO[bytes], on_line: LineCallback | None) -> None:
        self._log = log
        self._on_line = on_line
        self._open_line = False  # the command's last output had no newline: our next note starts a new line

    def line(self, raw: bytes) -> str:
        self._log.write(raw)
        self._open_line = not raw.endswith(b"\n")
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        self._call(text)
        return text

    def note(self, text: str) -> None:
        self._log.write((b"\n" if self._open_line else b"") + text.encode() + b"\n")
        self._open_line = False
        self._call(text)

    def _call(self, text: str) -> None:
        if self._on_line is None:
            return
        try:
            self._on_line(text)
        except Exception as error:  # a failing display must not stop the job (its pipe would fill and block it)
            self._on_line = None
            self._log.write(f"==> mlspec: log callback failed and was dropped: {error!r}\n".encode())


def _attempt(
    command: str,
    run: JobRun,
    run_id: str | None,
    attempt: int,
    emit: _Emitter,
    tail: collections.deque[str],
    deadline: float | None,
    stop: threading.Event | None,
) -> _Outcome:
    # The command runs under a watchdog holding a lifeline to this process: if we die (even by kill -9), it stops
    # the command's process group and closes the MLflow run as KILLED.
    lifeline = Lifeline()
    try:
        proc = subprocess.Popen(
            # bash -c COMMAND, or the node launcher for nodes, torchrun and limits; under the lifeline's watchdog
            lifeline.guard(job_argv(run, command), run.log_path),
            cwd=run.code,
            env=command_env(run, run_id, attempt),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a timeout stops the command and all it started
            pass_fds=(lifeline.read_fd,),
        )
    except OSError as error:
        lifeline.close()
        raise JobRunError(f"job '{run.job}': cannot start bash: {error}") from None
    lifeline.started()
    assert proc.stdout is not None
    pgid = proc.pid
    reader = threading.Thread(target=_pump, args=(proc.stdout, emit, tail), name=f"log-{run.job}", daemon=True)
    reader.start()
    # A thread blocked in wait() wakes the event the moment the command exits: no polling on the normal path.
    exited = threading.Event()

    def wait() -> None:
        proc.wait()
        exited.set()

    waiter = threading.Thread(target=wait, name=f"wait-{run.job}", daemon=True)
    waiter.start()

    outcome = _Outcome(None)
    try:
        while not exited.wait(_wait_slice(deadline, stop)):
            if stop is not None and stop.is_set():
                outcome.cancelled = True
                break
            if deadline is not None and time.monotonic() >= deadline:
                outcome.timed_out = True
                break
    except BaseException:  # Ctrl-C or a signal handler's exception: leave no job processes behind
        _stop_group(pgid, exited)
        lifeline.close()
        raise
    if outcome.timed_out or outcome.cancelled:
        _stop_group(pgid, exited)
    waiter.join()
    # Anything the command left running in its group (a background `&`) is an orphan now; stopping it also
    # closes the pipe it may hold, which the reader waits for.
    _stop_group(pgid, None)
    reader.join()
    proc.stdout.close()
    lifeline.close()
    outcome.exit_code = proc.returncode
    return outcome


def _wait_slice(deadline: float | None, stop: threading.Event | None) -> float | None:
    remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
    if stop is None:
        return remaining
    return STOP_POLL_S if remaining is None else min(remaining, STOP_POLL_S)


def _pump(stream: IO[bytes], emit: _Emitter, tail: collections.deque[str]) -> None:
    for raw in iter(partial(stream.readline, MAX_LINE_BYTES), b""):
        tail.append(emit.line(raw))


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal the process group; False once no process is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def _group_running(pgid: int) -> bool:
    """Whether a process of the group still runs. Zombies do not count: orphans are reaped by init, not by us,
    and an init that reaps slowly (or none at all, when we are PID 1 in a container) must not hold us up."""
    if not _signal_group(pgid, 0):
        return False
    try:
        return any(int(fields[2]) == pgid for _, fields in live_processes())
    except OSError:  # no procfs: trust kill(0)
        return True


def _stop_group(pgid: int, leader_exited: threading.Event | None) -> None:
    """SIGTERM the group, give it KILL_GRACE_S to exit, then SIGKILL whatever is left."""
    if not _signal_group(pgid, signal.SIGTERM):
        return
    end = time.monotonic() + KILL_GRACE_S
    if leader_exited is not None:
        leader_exited.wait(KILL_GRACE_S)
    while time.monotonic() < end and _group_running(pgid):
        time.sleep(0.01)
    _signal_group(pgid, signal.SIGKILL)

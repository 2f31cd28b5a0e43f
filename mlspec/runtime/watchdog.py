"""Ties a job's processes to the process that runs it, through a lifeline pipe that cannot be missed.

The runner (`mlspec up`) keeps the only write end of a pipe and starts the job through this watchdog, which holds
the read end. Nothing is ever written: the read returns end-of-file exactly when the runner is gone, however it
ended (kill -9 included), because the kernel closes its descriptors. The watchdog then stops the job's process
group and closes the job's MLflow run as KILLED. While the runner lives, the watchdog only waits for the command
and exits as it did.

It is run by its path with -E -S -P and imports little (a few milliseconds per job), so neither the job's
environment nor a file in its working directory can stop it from starting; it loads site-packages (for MLflow)
only once the runner is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from types import FrameType

GRACE_S = 5.0  # as the runner gives a job it stops: SIGTERM, then SIGKILL what is left after this long


class Lifeline:
    """The runner's side: a pipe whose read end goes to one watchdog; closing the write end is not needed for
    the job to end normally, only the runner's death matters."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()  # both non-inheritable: no other child of ours gets them

    def guard(self, argv: list[str], log: str | None = None) -> list[str]:
        """`argv` run under a watchdog that holds this lifeline (pass `self.read_fd` in pass_fds)."""
        return [sys.executable, "-E", "-S", "-P", os.path.abspath(__file__), str(self.read_fd), log or "", "--", *argv]

    def started(self) -> None:
        """The watchdog has its copy of the read end: ours goes (a reader left here is harmless, but useless)."""
        os.close(self.read_fd)
        self.read_fd = -1

    def close(self) -> None:
        """Once the command has ended: nothing is left to guard."""
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                os.close(fd)
        self.read_fd = self.write_fd = -1


def _note(log: str, text: str) -> None:
    if not log:
        return
    try:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"\n==> mlspec: {text}\n")
    except OSError:
        pass


def _others_in_group(pgid: int) -> list[int]:
    """Live processes of the group other than this one."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        state, _ppid, pgrp = stat[stat.rindex(b")") + 2 :].split()[:3]
        if int(pgrp) == pgid and state != b"Z":
            found.append(int(entry))
    return found


def _close_run_as_killed() -> None:
    """The job's MLflow run (if it has one) ends KILLED rather than staying RUNNING with nobody to end it."""
    run_id, uri = os.environ.get("MLFLOW_RUN_ID"), os.environ.get("MLFLOW_TRACKING_URI")
    if not run_id or not uri:
        return
    try:
        import logging
        import site

        site.main()  # started with -S: site-packages only now that they are needed
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.ERROR)
        client = MlflowClient(uri)
        client.set_tag(run_id, "mlspec.status", "cancelled")
        client.set_terminated(run_id, status="KILLED")
    except Exception as error:  # the next `mlspec up` closes runs left RUNNING
        print(f"mlspec watchdog: cannot mark run {run_id} as killed: {error}", file=sys.stderr)


def _stop_job(child_done: threading.Event, log: str) -> None:
    pgid = os.getpgid(0)
    _note(log, "the mlspec process running this job has ended; stopping the job")
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGTERM)  # ours is a no-op handler: we stay to finish the job off
    end = time.monotonic() + GRACE_S
    while time.monotonic() < end and (not child_done.is_set() or _others_in_group(pgid)):
        time.sleep(0.05)
    for pid in _others_in_group(pgid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    _close_run_as_killed()
    _note(log, "job stopped; its MLflow run was marked KILLED")


def main(args: list[str]) -> int:
    fd, log, command = int(args[0]), args[1], args[3:]
    os.set_inheritable(fd, False)  # the job itself must not hold the lifeline

    def ignore(signum: int, frame: FrameType | None) -> None:
        """The runner signals the whole group; the command decides how it ends and we follow it. (A handler,
        not SIG_IGN, so that the command starts with the default dispositions.)"""

    signal.signal(signal.SIGTERM, ignore)
    signal.signal(signal.SIGINT, ignore)
    try:  # same process group: the runner's signals to the group reach the command
        child = os.posix_spawnp(command[0], command, os.environ)
    except OSError as error:
        print(f"mlspec: cannot start {command[0]}: {error}", file=sys.stderr, flush=True)
        return 127
    child_done, runner_gone = threading.Event(), threading.Event()

    def watch() -> None:
        while True:
            try:
                if not os.read(fd, 64):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        if not child_done.is_set():
            runner_gone.set()
            _stop_job(child_done, log)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, status = os.waitpid(child, 0)
    child_done.set()
    if runner_gone.is_set():
        watcher.join()
    code = os.waitstatus_to_exitcode(status)
    if code < 0:  # die of the same signal, so the runner reads the command's own status
        if -code != signal.SIGKILL:
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

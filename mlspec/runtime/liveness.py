"""`python -m mlspec.runtime.liveness --url URL ... -- ARGV...`: runs a server and ends it when it fails liveness.

Docker marks a container whose healthcheck fails unhealthy, and nothing more. This supervisor, the container's
first process, starts ARGV as its child and probes URL on the probe's schedule (`mlspec.runtime.probing`, as the
local engine's supervisor does). After `failure_threshold` failures in a row it says so on stderr, stops the
child's whole process tree (SIGTERM, SIGKILL after KILL_GRACE_S) and exits with LIVENESS_EXIT, so the container's
restart policy starts it afresh: the local engine's restart, on a Docker host.

Otherwise it stays out of the way: SIGTERM and SIGINT go to the child as they came (its drain on stop is its own),
probes are no longer acted on once one has, and it exits with the child's code (128 + N for a signal N). It imports
the standard library and the probe runner only: it starts before the server and adds nothing to its start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import TypeVar

from mlspec.runtime.limits import tree
from mlspec.runtime.probing import LIVENESS_PATH, ProbeRunner, ProbeSettings
from mlspec.runtime.procfs import stat_fields

LIVENESS_EXIT = 70  # the server failed its liveness probe and was stopped (EX_SOFTWARE)
KILL_GRACE_S = 2.0  # a server that stopped answering is not drained: SIGTERM, then SIGKILL after this long
FORWARDED = (signal.SIGTERM, signal.SIGINT)
_PR_SET_CHILD_SUBREAPER = 36
_KEY = "live"
_Arg = TypeVar("_Arg")  # a command's argument: text, or a value a program resolves later


def supervised(python: str, port: int, settings: ProbeSettings, command: Sequence[_Arg]) -> list[str | _Arg]:
    """`command` (a server listening on `port`) run under this supervisor, probed on its live route."""
    return [python, "-m", __name__, "--url", f"http://127.0.0.1:{port}{LIVENESS_PATH}",
            "--initial-delay", f"{settings.initial_delay:g}", "--period", f"{settings.period:g}",
            "--timeout", f"{settings.timeout:g}", "--failure-threshold", str(settings.failure_threshold),
            "--", *command]


class Supervisor:
    """One child, its probe, and what happens when either ends first."""

    def __init__(self, url: str, settings: ProbeSettings, argv: list[str]) -> None:
        self.url, self.settings, self.argv = url, settings, argv
        self.child: int | None = None
        self.pending: list[int] = []  # signals that came before the child existed
        self.stopping = False  # told to stop: the child drains and exits as it decides, probes or not
        self.failed = threading.Event()  # set once the probe failed and the child's tree is being stopped
        self.stopped = threading.Event()  # the child's tree is gone after a failed probe
        self.runner = ProbeRunner(self._changed)

    def run(self) -> int:
        # Orphans of the child's tree (workers outliving it) become ours, not init's, so a failed probe stops
        # them too (in a container we are init already; elsewhere this keeps the tree together).
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        for sig in FORWARDED:
            signal.signal(sig, self._forward)
        try:  # its own process group: a terminal's Ctrl-C reaches it once, through us
            self.child = os.posix_spawnp(self.argv[0], self.argv, os.environ, setpgroup=0,
                                         setsigdef=FORWARDED)
        except OSError as error:
            print(f"mlspec liveness: cannot start {self.argv[0]}: {error}", file=sys.stderr, flush=True)
            return 127
        for early in self.pending:
            self._forward(early, None)
        self.runner.set_targets({_KEY: (self.url, self.settings, True)})
        threading.Thread(target=asyncio.run, args=(self.runner.run(),), name="liveness", daemon=True).start()
        code = self._wait_child()
        if self.failed.is_set():
            self.stopped.wait()
            code = LIVENESS_EXIT
        _kill_descendants()  # what the child left running is an orphan of ours now
        return code

    def _wait_child(self) -> int:
        """Reap every child that ends (orphans included) until the server itself has: its exit code."""
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return 1
            if pid == self.child:
                code = os.waitstatus_to_exitcode(status)
                return 128 - code if code < 0 else code

    def _forward(self, sig: int, frame: FrameType | None) -> None:
        self.stopping = True
        if self.child is None:
            self.pending.append(sig)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.child, sig)

    def _changed(self, key: str, passing: bool) -> None:
        """On the probe's thread: the failure threshold was reached (it never passes again: we act once)."""
        if passing or self.stopping or self.failed.is_set():
            return
        self.failed.set()
        state = self.runner.state(key)
        failures = state.failures if state else self.settings.failure_threshold
        s = self.settings
        print(f"mlspec liveness: {self.url} failed {failures} probes in a row (initial_delay {s.initial_delay:g}s, "
              f"period {s.period:g}s, timeout {s.timeout:g}s, failure_threshold {s.failure_threshold}); "
              f"stopping the server (SIGTERM, then SIGKILL after {KILL_GRACE_S:g}s) and exiting "
              f"{LIVENESS_EXIT} so that it is restarted", file=sys.stderr, flush=True)
        try:
            _stop_descendants()
        finally:
            self.stopped.set()


def _stop_descendants() -> None:
    """SIGTERM every process below us, give them KILL_GRACE_S, then SIGKILL what is left (a frozen server
    never handles SIGTERM). The main thread reaps them meanwhile."""
    for pid in tree(os.getpid())[1:]:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < end and _live_descendants():
        time.sleep(0.02)
    _kill_descendants()


def _live_descendants() -> list[int]:
    """Processes below us that have not exited (zombies waiting to be reaped do not count)."""
    return [pid for pid in tree(os.getpid())[1:] if (fields := stat_fields(pid)) is not None and fields[0] != b"Z"]


def _kill_descendants() -> None:
    """SIGKILL every process below us; twice, so one forked while the first pass ran goes too."""
    for _ in range(2):
        for pid in tree(os.getpid())[1:]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the live route: http://HOST:PORT/PATH or unix:/SOCKET:/PATH")
    parser.add_argument("--initial-delay", type=float, default=ProbeSettings.initial_delay)
    parser.add_argument("--period", type=float, default=ProbeSettings.period)
    parser.add_argument("--timeout", type=float, default=ProbeSettings.timeout)
    parser.add_argument("--failure-threshold", type=int, default=ProbeSettings.failure_threshold)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- ARGV...: the server to run")
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("give the server's command after --")
    try:
        args.settings = ProbeSettings.parse({"initial_delay": args.initial_delay, "period": args.period,
                                             "timeout": args.timeout, "failure_threshold": args.failure_threshold},
                                            "the liveness probe")
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return Supervisor(args.url, args.settings, list(args.command)).run()


if __name__ == "__main__":
    sys.exit(main())

"""A node launcher's node forked from the launcher's own warm process (a zygote's child) rather than started afresh.

The launcher keeps every duty it has for a node it starts (its output, its memory limit, its exit); only the
imports are not paid again.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import IO

from mlspec.runtime.serving.zygote import OWN_PREFIX, PAD_VAR, PR_SET_PDEATHSIG, SERVER, rewrite_marks


class ForkedNode:
    """A launcher's node forked from the launcher's own warm process, as the launcher holds a Popen."""

    def __init__(self, pid: int, stdout: IO[bytes]) -> None:
        self.pid = pid
        self.stdout: IO[bytes] | None = stdout
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)


def forked_node(argv: list[str], env: dict[str, str], cores: list[int] | None) -> ForkedNode | None:
    """The launcher's node (the scoring server on this interpreter) forked from this warm process, set up as the
    launcher sets up a node it starts: its cores, its output into the launcher's pipe, stopped when the launcher
    dies, and its environment, which may differ from this one only in the MLSPEC_* marks (what else a node is given,
    such as OMP_NUM_THREADS, acts at import time: the zygote must have been started with it). None when it cannot
    be: the launcher then starts the node afresh."""
    unlike = {k for k in env.keys() | os.environ.keys()
              if not k.startswith(OWN_PREFIX) and env.get(k) != os.environ.get(k)}
    if argv[:4] != [sys.executable, "-P", "-m", SERVER] or unlike:
        return None
    launcher = os.getpid()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            if cores is not None:
                os.sched_setaffinity(0, cores)
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            if os.getppid() != launcher:
                os._exit(1)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            marks = {k for k in env.keys() | os.environ.keys() if k.startswith(OWN_PREFIX) and k != PAD_VAR}
            rewrite_marks({k: env.get(k) for k in marks})  # the launcher's identity is its alone
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(write, 1)
            os.dup2(write, 2)
            os.close(null)
            os.close(write)
            from mlspec.runtime.serving.__main__ import main

            sys.argv = ["mlspec-serve", *argv[4:]]
            code = main(argv[4:])
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException as error:
            print(f"mlspec-zygote: node failed to start: {error}", file=sys.stderr)
        finally:
            from mlspec.runtime.serving.__main__ import _exit

            _exit(code)
    os.close(write)
    return ForkedNode(pid, os.fdopen(read, "rb"))

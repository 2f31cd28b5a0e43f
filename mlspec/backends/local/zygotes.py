"""Warm zygotes for the supervisor: scoring-server replicas forked from a pre-imported process per environment.

A replica started cold spends most of its start importing Python, numpy, scikit-learn and the server; a zygote
(`mlspec.runtime.serving.zygote`) pays that once and forks a replica per request in milliseconds. One zygote serves
the rows that agree on what a forked child can no longer change: the interpreter and the environment apart from
the MLSPEC_* marks (OMP_NUM_THREADS and the like act when a library is imported, so a row that sets them
differently gets a zygote of its own). The working folder, the marks and the log are the child's own.

The zygote forks each replica twice, so the replica is at once an orphan; the supervisor is a child subreaper, so
it inherits the replica and reads its real exit status, as it would for a process it started itself. Whatever
goes wrong with a zygote, the replica is started the usual way: a zygote only ever makes a start faster.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.processes import ID_VAR, STARTED_BY_VAR, WORKSPACE_VAR, stop_group
from mlspec.backends.local.state import ProcessRow
from mlspec.runtime.procfs import stat_fields
from mlspec.runtime.serving.zygote import OWN_PREFIX, fork_replica
from mlspec.runtime.sockets import socket_folder

ZYGOTE = "zygote"  # the owner mark of a zygote: not a row of the supervisor's, so never swept as an orphan of one
SERVER = ["-P", "-m", "mlspec.runtime.serving"]
LINGER_VAR = "MLSPEC_ZYGOTE_LINGER_S"
LINGER_S = 300.0  # a zygote outlives the last row of its kind this long, so a scale-up from zero forks too
FORK_TIMEOUT_S = 2.0
_PR_SET_CHILD_SUBREAPER = 36
_NAME_MAX = 21  # a socket's file name below: 16 hex digits + ".sock"


def become_subreaper() -> bool:
    """Make this process the one that inherits the orphans of its descendants (Linux); False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def forkable(row: ProcessRow) -> bool:
    """Rows that run the scoring server itself (not under the node launcher) can be forked from a zygote."""
    return row.argv[1:4] == SERVER


def zygote_key(row: ProcessRow, base: dict[str, str]) -> str:
    """What a forked child inherits and cannot change: the interpreter and the environment without marks."""
    env = {k: v for k, v in {**base, **row.env}.items() if not k.startswith(OWN_PREFIX)}
    return hashlib.sha256(json.dumps([row.argv[0], env], sort_keys=True).encode()).hexdigest()[:16]


def _start_ticks(pid: int) -> bytes | None:
    fields = stat_fields(pid)
    return fields[19] if fields else None


class ForkedReplica:
    """A replica a zygote forked, as the supervisor holds a Popen: its pid, and poll() for its exit status, which
    this process reads once the kernel hands the orphan to it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.ticks = _start_ticks(pid)

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            # Not ours yet: the zygote's first child, which answered with the pid, has not exited yet.
            if self.ticks is not None and _start_ticks(self.pid) == self.ticks:
                return None
            self.returncode = -1  # gone, and its status with it (someone else reaped it)
            return self.returncode
        if pid == 0:
            return None
        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


@dataclass
class Zygote:
    proc: subprocess.Popen[bytes]
    socket: Path
    needed: float  # monotonic time a desired row last needed it

    def ready(self) -> bool:
        return self.proc.poll() is None and self.socket.exists()


class ZygotePool:
    """The supervisor's zygotes, one per key, started on demand and stopped once unneeded for the linger."""

    def __init__(self, paths: WorkspacePaths, workspace: str, log: Callable[[str], None]) -> None:
        self.paths, self.workspace, self.log = paths, workspace, log
        self.enabled = become_subreaper()
        self.zygotes: dict[str, Zygote] = {}
        self.linger = float(os.environ.get(LINGER_VAR, LINGER_S))

    def fork(self, row: ProcessRow, marks: dict[str, str]) -> ForkedReplica | None:
        """The row's replica forked from its warm zygote; None (the caller starts it itself) when it cannot be."""
        if not self.enabled or not forkable(row):
            return None
        zygote = self.zygotes.get(zygote_key(row, dict(os.environ)))
        if zygote is None or not zygote.ready():
            return None
        try:
            pid = fork_replica(zygote.socket, row.argv[4:], marks, log=row.log, timeout=FORK_TIMEOUT_S, cwd=row.cwd)
        except (OSError, ValueError) as error:
            self.log(f"could not fork {row.id} from its zygote ({error}); starting it afresh")
            return None
        return ForkedReplica(pid)

    def tend(self, rows: list[ProcessRow]) -> None:
        """A zygote for every kind of serving row wanted now; those unneeded for the linger, and dead ones, go."""
        if not self.enabled:
            return
        now = time.monotonic()
        base = dict(os.environ)
        for row in rows:
            if row.desired and row.state != "stopped" and forkable(row):
                key = zygote_key(row, base)
                zygote = self.zygotes.get(key)
                if zygote is not None and zygote.proc.poll() is not None:
                    self.log(f"zygote {key} exited with {zygote.proc.returncode}; starting another")
                    zygote = None
                if zygote is None:
                    zygote = self.zygotes[key] = self.start(key, row, base)
                zygote.needed = now
        for key, zygote in list(self.zygotes.items()):
            if zygote.proc.poll() is not None or now - zygote.needed > self.linger:
                self.stop(key)

    def start(self, key: str, row: ProcessRow, base: dict[str, str]) -> Zygote:
        folder = socket_folder(self.paths.root / "zygotes", _NAME_MAX)
        socket = folder / f"{key}.sock"
        with contextlib.suppress(FileNotFoundError):
            socket.unlink()  # a dead zygote's: the new one is ready once its own is there
        env = {**base, **row.env, WORKSPACE_VAR: self.workspace, ID_VAR: f"supervisor/{ZYGOTE}/{key}",
               STARTED_BY_VAR: ZYGOTE}
        log = self.paths.logs / f"zygote-{key}.log"
        with open(log, "ab") as handle:
            proc = subprocess.Popen([row.argv[0], *SERVER[:2], "mlspec.runtime.serving.zygote", "--socket", str(socket),
                                     "--parent", str(os.getpid())], cwd=row.cwd, env=env, stdout=handle,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.log(f"started zygote {key} (pid {proc.pid}) for replicas like {row.id}")
        return Zygote(proc, socket, time.monotonic())

    def stop(self, key: str) -> None:
        zygote = self.zygotes.pop(key)
        if zygote.proc.poll() is None:
            stop_group(zygote.proc.pid, grace=2.0)
            self.log(f"stopped zygote {key}")
        zygote.proc.poll()
        with contextlib.suppress(FileNotFoundError):
            zygote.socket.unlink()

    def stop_all(self) -> None:
        for key in list(self.zygotes):
            self.stop(key)

    def pids(self) -> set[int]:
        return {zygote.proc.pid for zygote in self.zygotes.values()}


def reap_strays(tracked: set[int]) -> list[int]:
    """Reap exited children of this process that nobody waits for (the orphans a subreaper inherits, e.g. what a
    replica had started when it died); never one in `tracked`, whose status its owner reads. The pids reaped."""
    reaped = []
    for pid in _children():
        fields = stat_fields(pid)
        if pid in tracked or fields is None or fields[0] != b"Z":
            continue
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                reaped.append(pid)
    return reaped


def _children() -> set[int]:
    found: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/children", "rb") as handle:
            found.update(int(pid) for pid in handle.read().split())
    return found

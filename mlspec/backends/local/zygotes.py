"""Warm zygotes for the supervisor: scoring-server replicas forked from a pre-imported process per environment.

A replica started cold spends most of its start importing Python, numpy, scikit-learn and the server; a zygote
(`mlspec.runtime.serving.zygote`) pays that once and forks a replica per request in milliseconds. One zygote serves
the rows that agree on what a forked child can no longer change: the interpreter and the environment apart from
the MLSPEC_* marks (OMP_NUM_THREADS and the like act when a library is imported, so a row that sets them
differently gets a zygote of its own). The working folder, the marks and the log are the child's own.

The zygote forks each replica twice, so the replica is at once an orphan; the supervisor is a child subreaper, so
it inherits the replica and reads its real exit status, as it would for a process it started itself. Whatever
goes wrong with a zygote, the replica is started the usual way: a zygote only ever makes a start faster.

A replica within limits runs under the node launcher, which pins the server to its cores and holds its memory
limit: its zygote runs the launcher in the forked child, and the launcher forks the server from that same warm
process. The zygote is started with the environment the launcher gives its node (OMP_NUM_THREADS for its cores).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.processes import STARTED_BY_VAR, WORKSPACE_VAR, marked_processes, stop_group
from mlspec.backends.local.state import ProcessRow
from mlspec.runtime.limits import node_cores
from mlspec.runtime.nodes import parse as launcher_args
from mlspec.runtime.procfs import stat_fields
from mlspec.runtime.serving.zygote import LAUNCHER, OWN_PREFIX, SERVER, fork_replica
from mlspec.runtime.sockets import socket_folder

# The owner mark of a zygote. It carries no process id: no row declares it, so it is no process of the workspace's
# in the engine's eyes (nor an orphan of the supervisor's); it is part of the supervisor, and dies with it.
ZYGOTE = "zygote"
PYTHON_OPTIONS = ["-P", "-m"]
LINGER_VAR = "MLSPEC_ZYGOTE_LINGER_S"
LINGER_S = 300.0  # a zygote outlives the last row of its kind this long, so a scale-up from zero forks too
FORK_TIMEOUT_S = 2.0
RETRY_S = 5.0  # a zygote that exited or could not start is started again this long after, not every tick
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


class Fork(NamedTuple):
    """How a row is forked: by a zygote of `python` with `env` (without marks), running `module` with `argv`."""

    python: str
    env: dict[str, str]
    module: str
    argv: list[str]

    @property
    def key(self) -> str:
        """What a forked child inherits and cannot change: the interpreter and the environment without marks."""
        return hashlib.sha256(json.dumps([self.python, self.env], sort_keys=True).encode()).hexdigest()[:16]


def fork_of(row: ProcessRow, base: dict[str, str]) -> Fork | None:
    """How the row can be forked, for the scoring server alone or under the node launcher on one node without
    GPUs; None for any other row (or when the arguments do not parse), which is started afresh."""
    env = {k: v for k, v in {**base, **row.env}.items() if not k.startswith(OWN_PREFIX)}
    if row.argv[1:4] == [*PYTHON_OPTIONS, SERVER]:
        return Fork(row.argv[0], env, SERVER, row.argv[4:])
    launched = _launched_server(tuple(row.argv))
    if launched is None:
        return None
    python, cores = launched
    if cores is not None and "OMP_NUM_THREADS" not in env:  # as the launcher sets it for its node
        env["OMP_NUM_THREADS"] = str(cores)
    return Fork(python, env, LAUNCHER, row.argv[3:])


@functools.lru_cache(maxsize=256)
def _launched_server(argv: tuple[str, ...]) -> tuple[str, int | None] | None:
    """(the server's interpreter, how many cores the launcher pins it to) when `argv` is the node launcher running
    the scoring server on one node without GPUs; None otherwise. Cached: the supervisor asks every tick."""
    if list(argv[1:3]) != ["-m", LAUNCHER]:
        return None
    try:
        args = launcher_args(argv[3:])
    except SystemExit:
        return None
    node = list(args.argv)
    if args.nodes != 1 or args.pytorch or args.gpus or node[1:4] != [*PYTHON_OPTIONS, SERVER]:
        return None
    if args.cpus is None:
        return node[0], None
    return node[0], len(node_cores(args.node_offset, args.cpus, sorted(os.sched_getaffinity(0))))


def forkable(row: ProcessRow) -> bool:
    return fork_of(row, {}) is not None


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
        self.not_before: dict[str, float] = {}
        self.linger = float(os.environ.get(LINGER_VAR, LINGER_S))

    def fork(self, row: ProcessRow, marks: dict[str, str]) -> ForkedReplica | None:
        """The row's replica forked from its warm zygote; None (the caller starts it itself) when it cannot be."""
        plan = fork_of(row, dict(os.environ)) if self.enabled else None
        zygote = self.zygotes.get(plan.key) if plan else None
        if plan is None or zygote is None or not zygote.ready():
            return None
        try:
            pid = fork_replica(zygote.socket, plan.argv, marks, log=row.log, timeout=FORK_TIMEOUT_S, cwd=row.cwd,
                               module=plan.module)
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
            plan = fork_of(row, base) if row.desired and row.state != "stopped" else None
            if plan is None:
                continue
            zygote = self.zygotes.get(plan.key)
            if zygote is None and now >= self.not_before.get(plan.key, 0.0):
                zygote = self.start(plan, row)
            if zygote is not None:
                zygote.needed = now
        for key, zygote in list(self.zygotes.items()):
            if zygote.proc.poll() is not None:
                self.log(f"zygote {key} exited with {zygote.proc.returncode}; replicas start afresh until another "
                         f"is started, in {RETRY_S:.0f}s at the earliest")
                self.not_before[key] = now + RETRY_S
                self.stop(key)
            elif now - zygote.needed > self.linger:
                self.stop(key)

    def start(self, plan: Fork, row: ProcessRow) -> Zygote | None:
        key = plan.key
        env = {**plan.env, WORKSPACE_VAR: self.workspace, STARTED_BY_VAR: ZYGOTE}
        try:
            socket = socket_folder(self.paths.root / "zygotes", _NAME_MAX) / f"{key}.sock"
            with contextlib.suppress(FileNotFoundError):
                socket.unlink()  # a dead zygote's: the new one is ready once its own is there
            with open(self.paths.logs / f"zygote-{key}.log", "ab") as handle:
                # In mlspec's own folder: each replica moves to its row's.
                proc = subprocess.Popen([plan.python, *PYTHON_OPTIONS, "mlspec.runtime.serving.zygote", "--socket",
                                         str(socket), "--parent", str(os.getpid())], cwd=self.paths.proc, env=env,
                                        stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        except OSError as error:
            self.log(f"could not start a zygote for replicas like {row.id} ({error}); they start afresh")
            self.not_before[key] = time.monotonic() + RETRY_S
            return None
        self.log(f"started zygote {key} (pid {proc.pid}) for replicas like {row.id}")
        self.zygotes[key] = Zygote(proc, socket, time.monotonic())
        return self.zygotes[key]

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

    def sweep(self) -> None:
        """Stop zygotes of this workspace that this pool does not hold (an earlier supervisor's, should one have
        outlived it for a moment)."""
        for pid in set(marked_processes(self.workspace, ZYGOTE)) - self.pids():
            self.log(f"stopping a zygote this supervisor did not start (pid {pid})")
            stop_group(pid, grace=2.0)


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

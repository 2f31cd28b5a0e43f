"""The node launcher: runs a command on N local nodes (directly or under torchrun) within each node's CPU, memory
and GPU share, and fails as a whole, with the failing rank's last lines, when any node fails.

`python -m mlspec.runtime.nodes --nodes N [--pytorch P --python PY] [--cpus C] [--memory BYTES] [--gpus G]
--rank-dir DIR -- ARGV...`
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Protocol

from mlspec.runtime.launch import RANK_PREFIX_TEMPLATE, rank_command, torchrun_argv
from mlspec.runtime.limits import (
    core_count,
    kill_tree,
    local_gpus,
    node_cores,
    node_gpus,
        size_text,
    tree,
    tree_rss,
)

TAIL_LINES = 8  # with a header and a summary, what the engine shows of a failed job (its last 10 lines)
POLL_S = 0.1  # how often exits and memory are checked: a tree over its limit is stopped within about this long
STOP_GRACE_S = 3.0  # below execute's grace, so the launcher, not a SIGKILL of it, stops what its nodes started
_RANK_LINE = re.compile(rb"^\[rank(\d+)\]:")
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


class NodeProcess(Protocol):
    """What the launcher needs of a node's process: a Popen, or a node forked by a warm process."""

    pid: int
    returncode: int | None
    stdout: IO[bytes] | None

    def poll(self) -> int | None: ...

    def wait(self) -> int: ...

    def send_signal(self, sig: int) -> None: ...


# Starts a node some other way than a fresh process: (argv, env, cores) -> its process, or None for a fresh one.
Spawn = Callable[[list[str], dict[str, str], "list[int] | None"], "NodeProcess | None"]


@dataclass
class Node:
    index: int
    proc: NodeProcess
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=TAIL_LINES))
    peak: int = 0


class Output:
    """Lines from every node onto our stdout, whole lines at a time, with a tail kept per node and per rank."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ranks: dict[int, collections.deque[str]] = {}

    def pump(self, node: Node, label: bytes) -> None:
        assert node.proc.stdout is not None
        for raw in iter(partial(node.proc.stdout.readline, 64 * 1024), b""):
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            match = _RANK_LINE.match(raw)
            with self.lock:
                sys.stdout.buffer.write(raw if match or not label else label + raw)
                sys.stdout.buffer.flush()
                node.tail.append(text)
                if match:
                    rank_tail = self.ranks.setdefault(int(match.group(1)), collections.deque(maxlen=TAIL_LINES))
                    rank_tail.append(text[match.end():])  # the header of the report names the rank

    def note(self, text: str) -> None:
        with self.lock:
            sys.stdout.buffer.write(f"==> mlspec: {text}\n".encode())
            sys.stdout.buffer.flush()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _child_setup(cores: list[int] | None) -> Callable[[], None]:
    def setup() -> None:
        if cores is not None:
            os.sched_setaffinity(0, cores)  # inherited by everything the node starts, torchrun's workers too
        # A node whose launcher dies (kill -9) is told to stop rather than left running with nobody watching it.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    return setup


def _node_env(args: argparse.Namespace, index: int, gpus: list[str] | None, cores: list[int] | None) -> dict[str, str]:
    env = dict(os.environ)
    if args.identity:
        env.pop(args.identity, None)  # the launcher is the supervised process; its node dies with it (PDEATHSIG)
    if args.nodes > 1 and not args.pytorch:  # torchrun sets its own (NODE_RANK is GROUP_RANK there)
        env.update(NODE_RANK=str(index), NODE_COUNT=str(args.nodes))
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    if cores is not None and "OMP_NUM_THREADS" not in os.environ:
        # One thread pool per core it may use: a worker that counts the machine's cores would oversubscribe them.
        env["OMP_NUM_THREADS"] = str(max(1, len(cores) // max(1, args.pytorch or 1)))
    if args.pytorch:
        env["TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE"] = RANK_PREFIX_TEMPLATE
    return env


def start_nodes(args: argparse.Namespace, out: Output, spawn: Spawn | None = None) -> list[Node]:
    available_cores = sorted(os.sched_getaffinity(0))
    available_gpus = local_gpus() if args.gpus else []
    if args.gpus and len(available_gpus) < args.gpus:
        raise SystemExit(f"mlspec: a node of {args.gpus} GPU(s) needs more than the {len(available_gpus)} "
                         "this machine has")
    if args.pytorch and not args.rank_dir:
        raise SystemExit("mlspec: --pytorch needs --rank-dir")
    port = _free_port() if args.pytorch else 0
    if args.pytorch:
        shutil.rmtree(args.rank_dir, ignore_errors=True)
        os.makedirs(args.rank_dir)
    nodes: list[Node] = []
    for index in range(args.nodes):
        slot = args.node_offset + index
        cores = node_cores(slot, args.cpus, available_cores) if args.cpus is not None else None
        gpus = node_gpus(slot, args.gpus, available_gpus) if args.gpus else None
        argv = list(args.argv)
        if args.pytorch:
            command = ["bash", "-c", rank_command(shlex.join(argv), args.rank_dir)]
            argv = torchrun_argv(args.python, args.nodes, index, args.pytorch, port,
                                 os.path.join(args.rank_dir, f"node{index}"), command)
        if cores is not None:
            asked = f"cpus: {args.cpus:g}" + (f", rounded up to {core_count(args.cpus)}"
                                              if core_count(args.cpus) != args.cpus else "")
            out.note(f"node {index} pinned to core(s) {','.join(map(str, cores))} ({asked})")
        env = _node_env(args, index, gpus, cores)
        proc = spawn(argv, env, cores) if spawn is not None else None
        if proc is None:
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, preexec_fn=_child_setup(cores))
        nodes.append(Node(index, proc))
    return nodes


def _stop(nodes: Sequence[Node], signal_them: bool = True) -> None:
    """SIGTERM every node still running (torchrun passes it on to its workers), give them STOP_GRACE_S, then
    SIGKILL their trees. A stop asked of us by a signal to our process group already reached the nodes: a second
    SIGTERM could cut short the drain the first one started, so they are only waited for."""
    live = [n for n in nodes if n.proc.poll() is None]
    for node in live if signal_them else ():
        node.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while any(n.proc.poll() is None for n in live) and time.monotonic() < deadline:
        time.sleep(0.02)
    kill_leftovers()
    for node in nodes:
        node.proc.wait()


def kill_leftovers() -> None:
    """SIGKILL whatever is still below us: nodes that ignored SIGTERM, workers that outlived their agent, a
    background process a command left behind. As a child subreaper we inherit the orphans of our tree, so they are
    all there. (A node already reaped is never killed by its pid, which may belong to another process by now.)"""
    for pid in tree(os.getpid())[1:]:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _failed_rank(rank_dir: str) -> tuple[int, int] | None:
    """(rank, exit code) of the rank that failed first, from the exit codes ranks record as they end."""
    failures: list[tuple[float, int, int]] = []
    try:
        names = os.listdir(rank_dir)
    except OSError:
        return None
    for name in names:
        stem, _, ext = name.partition(".")
        if ext != "exit" or not stem.isdigit():
            continue
        path = os.path.join(rank_dir, name)
        try:
            with open(path) as handle:
                code = int(handle.read().strip() or "0")
            if code != 0:
                failures.append((os.path.getmtime(path), int(stem), code))
        except (OSError, ValueError):
            continue
    return (min(failures)[1], min(failures)[2]) if failures else None


def supervise(args: argparse.Namespace, nodes: list[Node], out: Output, stop: threading.Event) -> int:
    """Wait for every node; stop them all at the first failure, memory overrun or stop request."""
    scope = "the job's processes" if args.nodes == 1 else None
    while True:
        if stop.is_set():
            _stop(nodes, signal_them=False)
            return 143
        for node in nodes:
            if args.memory is not None and node.proc.poll() is None:
                node.peak = max(node.peak, tree_rss(node.proc.pid))
                if node.peak > args.memory:
                    kill_tree(node.proc.pid)  # at once: a grace period lets it grow further
                    _stop(nodes)
                    who = scope or f"node {node.index}"
                    out.note(f"{who} exceeded the {size_text(args.memory)} memory limit (peak "
                             f"{size_text(node.peak)}) and {'were' if scope else 'was'} stopped")
                    return 137
        codes = [n.proc.poll() for n in nodes]
        failed = next((n for n in nodes if n.proc.returncode not in (None, 0)), None)
        if failed is not None:
            _stop(nodes)
            return _report(args, failed, out)
        if all(code == 0 for code in codes):
            return 0
        stop.wait(POLL_S)


def _report(args: argparse.Namespace, failed: Node, out: Output) -> int:
    code = failed.proc.returncode or 0  # a failed node has exited non-zero
    code = 128 - code if code < 0 else code
    rank = _failed_rank(args.rank_dir) if args.pytorch else None
    if rank is not None:
        lines = list(out.ranks.get(rank[0], ()))
        what = f"rank {rank[0]} of {args.nodes * args.pytorch} (node {rank[0] // args.pytorch})"
        code = rank[1]
        out.note(f"last lines of {what}:")
    else:
        lines = list(failed.tail)
        what = f"node {failed.index}" + (" (torchrun)" if args.pytorch else "")
        if args.nodes > 1 or args.pytorch:
            out.note(f"last lines of {what}:")
    if args.nodes > 1 or args.pytorch:
        for line in lines:
            out.note(f"  {line}")
        others = "the other ranks were" if rank is not None else "the other nodes were"
        out.note(f"{what} failed with exit code {code}; {others} stopped")
    return code or 1


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}", description=__doc__)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--pytorch", type=int, default=0, metavar="PROCESSES_PER_NODE")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--cpus", type=float)
    parser.add_argument("--memory", type=int)
    parser.add_argument("--gpus", type=int)
    parser.add_argument("--rank-dir", help="where torchrun's ranks record exit codes and logs (--pytorch only)")
    parser.add_argument("--node-offset", type=int, default=0,
                        help="index of the first node in its group (a replica's): picks its cores and GPUs")
    parser.add_argument("--identity", help="an environment variable the launcher keeps and its nodes do not")
    parser.add_argument("argv", nargs="+")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, spawn: Spawn | None = None) -> int:
    """`spawn`: how a node may be started other than as a fresh process (a warm fork); None: always fresh."""
    args = parse(argv)
    # Orphans of our nodes (torchrun's workers start their own sessions) become our children, not init's: what
    # the job started stays in our tree until we stop it.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    out = Output()
    nodes = start_nodes(args, out, spawn)
    # Pumps start after every node is forked: no thread holds a lock while a child runs its set-up.
    pumps = [threading.Thread(target=out.pump, args=(n, f"[node{n.index}]:".encode() if args.nodes > 1 else b""),
                              daemon=True) for n in nodes]
    for pump in pumps:
        pump.start()
    code = supervise(args, nodes, out, stop)
    kill_leftovers()  # after a success too: what the command left running is an orphan now
    for pump in pumps:
        pump.join(timeout=2.0)
    return code


if __name__ == "__main__":
    sys.exit(main())

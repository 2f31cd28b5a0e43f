"""A node's share of this machine: which CPU cores and GPUs it gets, and the memory its process tree uses."""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from mlspec.runtime.procfs import live_processes

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_UNITS = (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))


def size_text(size: int) -> str:
    """Bytes as a spec writes them: '256Mi', '1.5Gi'."""
    for unit, scale in _UNITS:
        if size >= scale:
            value = size / scale
            return f"{value:.0f}{unit}" if value >= 10 or value == int(value) else f"{value:.1f}{unit}"
    return f"{size}"


# --- CPU cores ----------------------------------------------------------------------------------------------------

def core_count(cpus: float) -> int:
    """Whole cores for a CPU request: a process is pinned to cores, so a fraction rounds up (0.5 -> 1)."""
    return max(1, math.ceil(cpus))


def node_cores(node: int, cpus: float, available: list[int]) -> list[int]:
    """The cores node `node` is pinned to: consecutive slices of `available`, wrapping around when the nodes ask
    for more cores than the machine has (they then share), and all of them when one node asks for more."""
    want = core_count(cpus)
    if want >= len(available):
        return list(available)
    start = node * want
    return sorted({available[(start + k) % len(available)] for k in range(want)})


# --- GPUs ---------------------------------------------------------------------------------------------------------

def local_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """The GPUs mlspec may hand out: those CUDA_VISIBLE_DEVICES already allows, else every NVIDIA GPU here."""
    visible = (os.environ if environ is None else environ).get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    return [str(i) for i in range(_nvidia_gpu_count())]


def _nvidia_gpu_count() -> int:
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir():
        return sum(1 for _ in gpus.iterdir())
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return len(re.findall(r"^GPU \d+:", out, flags=re.MULTILINE))


def node_gpus(node: int, gpus: int, available: list[str]) -> list[str]:
    """Node `node`'s devices: its own slice of `available`, wrapping around (so shared) when the nodes together
    ask for more; the local plan refuses that for a job's nodes, and allows it for an endpoint's replicas."""
    if gpus >= len(available):
        return list(available)
    return [available[(node * gpus + k) % len(available)] for k in range(gpus)]


# --- memory of a process tree -------------------------------------------------------------------------------------

def process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, resident bytes) of every live process, from one pass over /proc."""
    # Field 24 of stat (index 21 after the command name) is the resident set in pages.
    return {pid: (int(fields[1]), int(fields[21]) * _PAGE) for pid, fields in live_processes()}


def tree(root: int, table: dict[int, tuple[int, int]] | None = None) -> list[int]:
    """`root` and every process descended from it, by parent pid (so also those that started their own session,
    as torchrun's workers do). Without a `table`, read from the tree's own /proc entries where the kernel lists
    children: a watch over a small tree then costs a few reads, not a pass over every process on the machine."""
    if table is None and _CHILDREN_LISTED:
        return _walk(root)
    table = process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, queue = [], [root] if root in table else []
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, ()))
    return found


def _walk(root: int) -> list[int]:
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        try:
            threads = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue  # gone meanwhile
        found.append(pid)
        for tid in threads:  # a child belongs to the thread that forked it
            try:
                with open(f"/proc/{pid}/task/{tid}/children", "rb") as handle:
                    queue.extend(int(child) for child in handle.read().split())
            except OSError:
                continue
    return found


_CHILDREN_LISTED = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def tree_rss(root: int, table: dict[int, tuple[int, int]] | None = None) -> int:
    """Resident memory of a process tree, in bytes (pages shared between its processes count once per process)."""
    if table is not None or not _CHILDREN_LISTED:
        table = process_table() if table is None else table
        return sum(table[pid][1] for pid in tree(root, table))
    total = 0
    for pid in _walk(root):
        try:
            with open(f"/proc/{pid}/statm", "rb") as handle:
                total += int(handle.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


def kill_tree(root: int) -> None:
    """SIGKILL a process tree; twice, so a child forked while the first pass ran goes too."""
    for _ in range(2):
        for pid in tree(root):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

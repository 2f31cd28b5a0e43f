"""Command lines that start a job: its command alone, or the node launcher (several nodes, torchrun, limits)."""

from __future__ import annotations

import os
import shlex
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the node launcher imports this module: it must start without pydantic
    from mlspec.runtime.jobrun import JobRun, NodeLimits

LAUNCHER = "mlspec.runtime.nodes"
RANK_DIR = "ranks"


def job_argv(run: JobRun, command: str) -> list[str]:
    """What to start for one attempt of a job whose command is already substituted.

    A plain job is `bash -c COMMAND`, as it always was: no extra process on the common path. One that runs on
    several nodes, under torchrun or with limits goes through the node launcher, which owns its node processes.
    """
    if run.nodes == 1 and run.distribution is None and not _limit_options(run.limits):
        return ["bash", "-c", command]
    argv = [sys.executable, "-m", LAUNCHER, "--nodes", str(run.nodes)]
    if run.distribution == "pytorch":
        argv += ["--pytorch", str(run.processes_per_node), "--python", job_python(run),
                 "--rank-dir", os.path.join(run.workdir, RANK_DIR)]
    return [*argv, *_limit_options(run.limits), "--", "bash", "-c", command]


def limited_argv(argv: list[str], limits: NodeLimits, slot: int, identity: str | None = None) -> list[str]:
    """A server's command line within its limits (`slot`: which replica, so replicas spread over cores and GPUs);
    unchanged when there are none. `identity`: the environment variable by which a supervisor knows its process,
    kept by the launcher alone so that one process answers to each identity."""
    options = _limit_options(limits)
    if not options:
        return argv
    own = ["--identity", identity] if identity else []
    return [sys.executable, "-m", LAUNCHER, "--node-offset", str(slot), *own, *options, "--", *argv]


def _limit_options(limits: NodeLimits) -> list[str]:
    options: list[str] = []
    if limits.cpus is not None:
        options += ["--cpus", repr(limits.cpus)]
    if limits.memory is not None:
        options += ["--memory", str(limits.memory)]
    if limits.gpus is not None:
        options += ["--gpus", str(limits.gpus)]
    return options


def job_python(run: JobRun) -> str:
    """The interpreter of the job's environment (its venv), which is also the one that runs torchrun."""
    if run.path_prefix and os.path.exists(os.path.join(run.path_prefix, "python")):
        return os.path.join(run.path_prefix, "python")
    return sys.executable


def rank_command(command: str, rank_dir: str) -> str:
    """The command each torchrun worker runs: it records its exit code in RANK_DIR/RANK.exit on its way out, so
    the launcher can tell the rank that failed from the ranks torchrun stopped because of it (a signal skips the
    EXIT trap, so a stopped rank leaves no file)."""
    record = f"printf '%s' \"$?\" > {shlex.quote(rank_dir)}/\"$RANK\".exit"
    return f"trap {shlex.quote(record)} EXIT\n{command}"


def torchrun_argv(python: str, nodes: int, node_rank: int, per_node: int, port: int, log_dir: str,
                  command: list[str]) -> list[str]:
    """One torchrun agent: node `node_rank` of `nodes`, `per_node` workers, a static rendezvous on 127.0.0.1."""
    return [python, "-m", "torch.distributed.run",
            "--nnodes", str(nodes), "--node-rank", str(node_rank), "--nproc-per-node", str(per_node),
            "--rdzv-backend", "static", "--master-addr", "127.0.0.1", "--master-port", str(port),
            "--max-restarts", "0",
            # Each worker's output is tee'd to a file and to the agent's output, prefixed with its global rank.
            "--tee", "3", "--log-dir", log_dir,
            "--no-python", *command]


RANK_PREFIX_TEMPLATE = "[rank${rank}]:"

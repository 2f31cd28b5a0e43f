"""Pieces every mlspec container shares: labels, healthchecks, networks, sizes, hardening and env lists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker as docker

from mlspec.runtime import envfiles

USER = "mlspec"  # the non-root user every mlspec image creates
UID = 1000  # its uid and gid
PYTHON = "python"  # the image's venv is first on PATH
STORAGE = "/mlspec"  # where the workspace volume is mounted
HOME = f"/home/{USER}"  # the user's home and working directory (the image's WORKDIR)
# Processes and threads of the user: RLIMIT_NPROC, the bound pulumi-docker can declare (it has no PidsLimit). The
# kernel counts it per user across the host, so it bounds every container of uid 1000 together, not each alone:
# a fork bomb stops there, and a workspace's servers, jobs and notebooks (threads included) stay well under it.
PROCESS_LIMIT = 4096


@dataclass(frozen=True)
class Size:
    """CPU, memory and GPUs of one container.

    :param cpus: CPU cores: a hard limit (`cpu_limit`), and as many CPU shares (1 core = 1024), its weight under
        contention.
    :param memory_mb: hard memory limit in MiB.
    :param gpus: GPUs to expose: that many NVIDIA GPUs through a device request (``--gpus N``); 0: none.
    """

    cpus: float = 1.0
    memory_mb: int = 2048
    gpus: int = 0

    @property
    def cpu_shares(self) -> int:
        return max(2, round(self.cpus * 1024))

    @property
    def cpu_limit(self) -> str:
        """The hard CPU limit (``--cpus``): the container never uses more than `cpus` cores, idle host or not."""
        return f"{self.cpus:g}"

    @property
    def device_requests(self) -> list[docker.ContainerDeviceRequestArgs] | None:
        if self.gpus <= 0:
            return None
        return [docker.ContainerDeviceRequestArgs(driver="nvidia", count=self.gpus, capabilities=["gpu"])]


@dataclass(frozen=True)
class Health:
    """An HTTP healthcheck with the image's Python (slim images have no curl), and how long to wait for it.

    :param interval: seconds between checks. :param timeout: seconds one check may take.
    :param retries: failures in a row before the container counts as unhealthy.
    :param start_period: seconds after start during which failures do not count.
    """

    interval: float = 5
    timeout: float = 3
    retries: int = 30
    start_period: float = 5

    def check(self, port: int, path: str) -> docker.ContainerHealthcheckArgs:
        probe = (f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}{path}', "
                 f"timeout={self.timeout:g})")
        return docker.ContainerHealthcheckArgs(tests=["CMD", PYTHON, "-c", probe], interval=_duration(self.interval),
                                               timeout=_duration(self.timeout), retries=self.retries,
                                               start_period=_duration(self.start_period))

    @property
    def wait_timeout(self) -> int:
        """Seconds `wait=True` allows: the whole healthcheck budget, so a slow model load is not cut short."""
        return int(self.start_period + (self.interval + self.timeout) * (self.retries + 1)) + 10


def hardened(size: Size, *, exec_tmp: bool = False) -> dict[str, Any]:
    """What every mlspec container declares besides its own arguments (spread into ``docker.Container``): its
    size as hard limits (memory without swap, CPU quota and weight, GPUs) and a locked-down process.

    The root filesystem is read-only; what the servers, jobs and notebooks write goes to the workspace volume or
    to two tmpfs, ``/tmp`` and the user's home (caches and settings of MLflow, JupyterLab, pip, torch, matplotlib),
    whose pages count against the container's memory limit, so each is capped at half of it. Every capability is
    dropped (the images run as uid 1000 and bind ports above 1024), ``no-new-privileges`` stops setuid binaries
    from gaining any, and the user's processes are bounded (`PROCESS_LIMIT`). Files a container needs at start
    come through its environment (``mlspec.runtime.envfiles``): Docker copies nothing into a read-only container.

    :param exec_tmp: allow running programs from ``/tmp`` (a job's command may build and run its own); servers
        and notebooks get ``noexec``.
    """
    return {
        "read_only": True,
        "tmpfs": {"/tmp": _tmpfs(size, exec_tmp, "mode=1777"),
                  HOME: _tmpfs(size, False, f"uid={UID},gid={UID},mode=0700")},  # mode alone leaves it root's
        "capabilities": docker.ContainerCapabilitiesArgs(drops=["ALL"]),
        "security_opts": ["no-new-privileges:true"],
        "ulimits": [docker.ContainerUlimitArgs(name="nproc", soft=PROCESS_LIMIT, hard=PROCESS_LIMIT)],
        "memory": size.memory_mb,
        "memory_swap": size.memory_mb,  # equal to memory: no swap on top of the limit
        "cpus": size.cpu_limit,
        "cpu_shares": size.cpu_shares,
        "device_requests": size.device_requests,
    }


TAG_LABEL = "mlspec.tag."  # a spec tag KEY: VALUE is the Docker label mlspec.tag.KEY=VALUE


def tag_labels(tags: dict[str, str] | None) -> dict[str, str]:
    """The spec's tags as Docker label names and values."""
    return {f"{TAG_LABEL}{k}": v for k, v in sorted((tags or {}).items())}


def labels(workspace: str, resource: str, extra: dict[str, str] | None = None,
           tags: dict[str, str] | None = None) -> list[docker.ContainerLabelArgs]:
    """mlspec's own labels (`extra` too) and the resource's tags (`mlspec.tag.KEY`)."""
    values = {**tag_labels(tags), "mlspec.workspace": workspace, "mlspec.resource": resource, **(extra or {})}
    return [docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(values.items())]


def envs(values: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in sorted(values.items())]


def with_files(*command: pulumi.Input[str]) -> list[pulumi.Input[str]]:
    """`command`, started once the files of the container's `files_variable` are written (to its tmpfs)."""
    return [PYTHON, "-m", "mlspec.runtime.envfiles", *command]


def files_variable(files: dict[str, pulumi.Input[str]]) -> pulumi.Output[str]:
    """The environment entry that carries `files` (absolute path -> text) into a `with_files` command."""
    return pulumi.Output.all(**files).apply(lambda texts: envfiles.variable(dict(texts)))


def network(network_name: pulumi.Input[str], *aliases: str) -> list[docker.ContainerNetworksAdvancedArgs]:
    return [docker.ContainerNetworksAdvancedArgs(name=network_name, aliases=list(aliases))]


def storage(volume_name: pulumi.Input[str], read_only: bool = False) -> list[docker.ContainerVolumeArgs]:
    return [docker.ContainerVolumeArgs(volume_name=volume_name, container_path=STORAGE, read_only=read_only)]


def _tmpfs(size: Size, executable: bool, access: str) -> str:
    return f"rw,nosuid,nodev,{'exec' if executable else 'noexec'},size={max(64, size.memory_mb // 2)}m,{access}"


def _duration(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms" if seconds < 1 else f"{seconds:g}s"

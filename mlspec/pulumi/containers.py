"""Pieces every mlspec container shares: labels, healthchecks, the workspace network, sizes and env lists."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

USER = "mlspec"  # the non-root user every mlspec image creates (uid 1000)
PYTHON = "python"  # the image's venv is first on PATH
STORAGE = "/mlspec"  # where the workspace volume is mounted


@dataclass(frozen=True)
class Size:
    """CPU, memory and GPUs of one container.

    :param cpus: CPU cores; becomes Docker CPU shares (1 core = 1024), a relative weight under contention.
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


def network(network_name: pulumi.Input[str], *aliases: str) -> list[docker.ContainerNetworksAdvancedArgs]:
    return [docker.ContainerNetworksAdvancedArgs(name=network_name, aliases=list(aliases))]


def storage(volume_name: pulumi.Input[str], read_only: bool = False) -> list[docker.ContainerVolumeArgs]:
    return [docker.ContainerVolumeArgs(volume_name=volume_name, container_path=STORAGE, read_only=read_only)]


def _duration(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms" if seconds < 1 else f"{seconds:g}s"

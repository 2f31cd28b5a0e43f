"""Stack settings of a compiled program (Pulumi config in the `mlspec` namespace) and the Docker provider."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

DEFAULT_PYTHON = "3.11"
DEFAULT_BASE_IMAGE = f"python:{DEFAULT_PYTHON}-slim"
# The official Python images (python:3.11-slim, docker.io/library/python:3.12-bookworm): one per Python version.
_OFFICIAL = re.compile(r"^(?P<repo>(?:(?:docker\.io/)?library/)?python):3\.\d+(?P<variant>-[\w.-]+)?$")
DEFAULT_PUBLISH_ADDRESS = "127.0.0.1"


@dataclass(frozen=True)
class Settings:
    """What a stack decides about the Docker host, rather than the spec.

    :param base_image: ``mlspec:baseImage``: the Debian-based image environments start from (it needs
        ``python3``, ``python3 -m venv`` and pip). Default ``python:3.11-slim``. An environment that asks for
        a Python version starts from that version's image: see `base_image_for`.
    :param wheelhouse: ``mlspec:wheelhouse``: an absolute folder of wheels; when set, every image installs its
        Python packages from it alone (``pip install --no-index --find-links``), for hosts with no package index.
    :param publish_address: ``mlspec:publishAddress``: the host address gateway and JupyterLab ports are published
        on. Default ``127.0.0.1``: reachable from this host only.
    :param docker_host: ``mlspec:dockerHost``: e.g. ``ssh://user@vm`` or ``unix:///run/docker.sock``; when set,
        every resource goes through an explicit Docker provider for that host.
    :param ssh_opts: ``mlspec:sshOpts``: a list of options for the ``ssh`` client that reaches every ``ssh://``
        host (the stack's and attached computes'), e.g. ``["-i", "/keys/ml", "-o", "UserKnownHostsFile=/keys/known"]``;
        unset: the client's own configuration (``~/.ssh/config``, an agent) decides.
    """

    base_image: str = DEFAULT_BASE_IMAGE
    wheelhouse: str | None = None
    publish_address: str = DEFAULT_PUBLISH_ADDRESS
    docker_host: str | None = None
    ssh_opts: tuple[str, ...] = ()

    @classmethod
    def from_config(cls) -> Settings:
        config = pulumi.Config("mlspec")
        return cls(base_image=config.get("baseImage") or DEFAULT_BASE_IMAGE, wheelhouse=wheelhouse_of(config),
                   publish_address=config.get("publishAddress") or DEFAULT_PUBLISH_ADDRESS,
                   docker_host=config.get("dockerHost") or None, ssh_opts=ssh_opts_of(config))

    def base_image_for(self, python: str | None) -> str:
        """The base image of an environment that asks for `python` ('3.10'): the setting with ``{python}``
        replaced (``registry/py:{python}-bookworm``), or, for an official ``python:X.Y[-variant]`` image, the same
        variant of that version; any other image is used as it is, and the build stops unless its ``python3`` is
        that version. None: the setting itself (``{python}`` as 3.11)."""
        if "{python}" in self.base_image:
            return self.base_image.replace("{python}", python or DEFAULT_PYTHON)
        if python is None:
            return self.base_image
        return _OFFICIAL.sub(lambda m: f"{m.group('repo')}:{python}{m.group('variant') or ''}", self.base_image)

    def provider(self) -> docker.Provider | None:
        """An explicit provider when the stack names a Docker host; None: the ambient one (DOCKER_HOST)."""
        if not self.docker_host:
            return None
        return self.provider_for("docker-host", self.docker_host)

    def provider_for(self, name: str, host: str, opts: pulumi.ResourceOptions | None = None) -> docker.Provider:
        """An explicit provider for `host`, with ``mlspec:sshOpts`` when it is reached over SSH."""
        ssh_opts = list(self.ssh_opts) if host.startswith("ssh://") and self.ssh_opts else None
        return docker.Provider(name, host=host, ssh_opts=ssh_opts, opts=opts)


def wheelhouse_of(config: pulumi.Config) -> str | None:
    """`mlspec:wheelhouse`, checked: an absolute folder that exists; None when unset."""
    wheelhouse = config.get("wheelhouse") or None
    if wheelhouse and not os.path.isabs(wheelhouse):
        raise ValueError(f"mlspec:wheelhouse must be an absolute folder, not {wheelhouse!r}")
    if wheelhouse and not os.path.isdir(wheelhouse):
        raise ValueError(f"mlspec:wheelhouse {wheelhouse} is not a folder; build it with `pip wheel` or unset it")
    return wheelhouse


def ssh_opts_of(config: pulumi.Config) -> tuple[str, ...]:
    """`mlspec:sshOpts`, checked: a list of strings; () when unset."""
    value = config.get_object("sshOpts")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"mlspec:sshOpts must be a list of ssh options, not {value!r}")
    return tuple(value)

"""The stack file kept beside a spec: named stacks, each choosing a target and that target's settings."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import PurePosixPath
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mlspec.spec.base import Strict
from mlspec.spec.capabilities import Target
from mlspec.spec.state_location import location_problem

# One file per spec folder; never loaded as spec documents, so the spec stays the same in every environment.
STACKS_FILES = ("mlspec.stacks.yaml", "mlspec.stacks.yml")
STACK_ENV = "MLSPEC_STACK"
# Pulumi's own rule for stack names: the compiled project's stack carries the same name.
STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
DOCKER_HOST_SCHEMES = ("ssh", "tcp", "unix", "npipe")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class DockerStack(Strict):
    """Where and how a docker stack deploys: the compiled project's Pulumi config (``mlspec:*``)."""

    host: str | None = Field(None, description="The Docker host, e.g. ssh://user@host (default: the local daemon, "
                                               "or DOCKER_HOST). Pulumi config mlspec:dockerHost.")
    base_image: str | None = Field(None, description="The Debian-based image environments start from "
                                                     "(default python:3.11-slim). Pulumi config mlspec:baseImage.")
    publish_address: str | None = Field(None, description="The host address gateway and JupyterLab ports are "
                                                          "published on (default 127.0.0.1). mlspec:publishAddress.")
    wheelhouse: str | None = Field(None, description="An absolute folder of wheels that images install from alone "
                                                     "(hosts without a package index). mlspec:wheelhouse.")
    ssh_opts: list[str] | None = Field(None, description="Options for the ssh client that reaches every ssh:// host "
                                                         "(the stack's and attached computes'), e.g. ['-i', "
                                                         "'/keys/ml']. mlspec:sshOpts.")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        scheme = (value or "").split("://", 1)[0] if "://" in (value or "") else ""
        if value is not None and (scheme not in DOCKER_HOST_SCHEMES or not value.split("://", 1)[1]):
            raise ValueError(f"'{value}' is not a Docker host: write ssh://user@host, tcp://host:2376 or "
                             "unix:///var/run/docker.sock")
        return value

    @field_validator("base_image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c.isspace() for c in value)):
            raise ValueError(f"'{value}' is not an image reference, such as python:3.11-slim")
        return value

    @field_validator("publish_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"'{value}' is not an IP address, such as 127.0.0.1 or 0.0.0.0") from None
        return value

    @field_validator("wheelhouse")
    @classmethod
    def _wheelhouse(cls, value: str | None) -> str | None:
        if value is not None and not PurePosixPath(value).is_absolute():
            raise ValueError(f"'{value}' is not an absolute folder; the wheelhouse is read on the Docker host "
                             "that builds the images")
        return value

    def pulumi_config(self) -> dict[str, str]:
        """The settings as the compiled program reads them (mlspec.pulumi.settings), unset ones left out."""
        pairs = {"dockerHost": self.host, "baseImage": self.base_image, "publishAddress": self.publish_address,
                 "wheelhouse": self.wheelhouse}
        found = {key: value for key, value in pairs.items() if value is not None}
        if self.ssh_opts is not None:
            found["sshOpts"] = json.dumps(self.ssh_opts)  # Pulumi config holds text; the program reads it as a list
        return found


class KubernetesStack(Strict):
    """Where a kubernetes stack deploys: the cluster, the namespace, the registry images are pushed to."""

    context: str | None = Field(None, description="The kubeconfig context (default: the current one).")
    namespace: str | None = Field(None, description="The namespace (default: the workspace's name).")
    registry: str | None = Field(None, description="The registry images are pushed to, e.g. registry.example.com/ml.")
    expose: Literal["cluster-ip", "load-balancer"] = Field(
        "cluster-ip", description="How online endpoints' gateways are reached: 'cluster-ip' from inside the cluster "
        "alone (port-forward or your own Ingress), 'load-balancer' from outside it through a LoadBalancer Service "
        "(the cloud's load balancer; the gateway checks keys or tokens, and its NetworkPolicy admits its port from "
        "anywhere).")

    @field_validator("context")
    @classmethod
    def _context(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("the context is empty: name a context of your kubeconfig, or leave it out")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        if value is not None and not _DNS_LABEL.match(value):
            raise ValueError(f"'{value}' is not a namespace name: lower-case letters, digits and '-', "
                             "at most 63, starting and ending with a letter or digit")
        return value

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str | None) -> str | None:
        if value is not None and ("://" in value or not value or any(c.isspace() for c in value)):
            raise ValueError(f"'{value}' is not a registry: write a host and path without a scheme, such as "
                             "registry.example.com/ml")
        return value

    def pulumi_config(self) -> dict[str, str]:
        """The settings the compiled program reads (mlspec.pulumi.kubernetes.settings), unset ones left out; the
        namespace is compiled into the objects instead."""
        pairs = {"kubeContext": self.context, "registry": self.registry}
        return {key: value for key, value in pairs.items() if value is not None}


class Stack(Strict):
    """One environment the spec runs in: its target and that target's settings."""

    target: Target = Field(description="Where this stack deploys: local, docker or kubernetes.")
    description: str | None = Field(None, description="What the stack is for.")
    docker: DockerStack | None = Field(None, description="Settings of a docker stack.")
    kubernetes: KubernetesStack | None = Field(None, description="Settings of a kubernetes stack.")
    state: str | None = Field(None, description="Where the stack's state is shared, so CI plans against what is "
                                                "deployed: a folder (relative to this file), file:// URL or "
                                                "s3://bucket/prefix for a local stack, which publishes a snapshot "
                                                "there and locks it during up and down; for docker and "
                                                "kubernetes stacks, Pulumi's backend "
                                                "(PULUMI_BACKEND_URL): a folder, file://, s3://, gs://, azblob:// "
                                                "or https://. --state and MLSPEC_STATE override it.")

    @field_validator("state")
    @classmethod
    def _state(cls, value: str | None, info: ValidationInfo) -> str | None:
        target = info.data.get("target")
        problem = location_problem(value, target) if value is not None and target is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _settings_of_its_target(self) -> Stack:
        # Settings for another target would be silently unused: refused, like any field a target does not honour.
        for name in ("docker", "kubernetes"):
            if getattr(self, name) is not None and self.target != name:
                raise ValueError(f"{name} settings on a stack whose target is {self.target}: they would not be "
                                 f"used; set 'target: {name}' or remove them")
        return self


class StacksFile(Strict):
    """``mlspec.stacks.yaml``: the stacks of the spec in its folder, and which one commands use by default."""

    default: str | None = Field(None, description="The stack used when neither --stack nor MLSPEC_STACK names one "
                                                  "(default: none, the local target).")
    stacks: dict[str, Stack] = Field(min_length=1, description="The stacks, by name.")

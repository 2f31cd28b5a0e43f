"""Stack settings of a compiled Kubernetes program (Pulumi config in the `mlspec` namespace) and its provider."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from mlspec.pulumi.settings import DEFAULT_BASE_IMAGE, wheelhouse_of


class SettingsError(ValueError):
    """A stack setting is missing or wrong; the message names it and what to set."""


@dataclass(frozen=True)
class ClusterSettings:
    """What a stack decides about the cluster, rather than the spec.

    :param registry: ``mlspec:registry``: where images are pushed and pulled from (``registry.example.com/team``);
        the cluster's nodes must be able to pull from it. Required: a cluster cannot run an image that only this
        machine holds.
    :param registry_username: ``mlspec:registryUsername``, with the secret ``mlspec:registryPassword``: the push
        credentials, when the Docker client here is not already logged in.
    :param kube_context: ``mlspec:kubeContext``: a context of your kubeconfig; every object goes through an
        explicit provider for it. Unset: the provider's default (``KUBECONFIG``'s current context).
    :param base_image: ``mlspec:baseImage``: the Debian-based image the runtime image starts from.
    :param wheelhouse: ``mlspec:wheelhouse``: an absolute folder of wheels to install from alone.
    """

    registry: str
    registry_username: str | None = None
    registry_password: pulumi.Input[str] | None = None
    kube_context: str | None = None
    base_image: str = DEFAULT_BASE_IMAGE
    wheelhouse: str | None = None

    @classmethod
    def from_config(cls) -> ClusterSettings:
        config = pulumi.Config("mlspec")
        registry = (config.get("registry") or "").rstrip("/")
        if not registry:
            raise SettingsError("mlspec:registry is not set: `pulumi config set mlspec:registry REGISTRY/PATH`, a "
                                "registry the cluster's nodes can pull from")
        wheelhouse = wheelhouse_of(config)
        return cls(registry=registry, registry_username=config.get("registryUsername") or None,
                   registry_password=config.get_secret("registryPassword"),
                   kube_context=config.get("kubeContext") or None,
                   base_image=config.get("baseImage") or DEFAULT_BASE_IMAGE, wheelhouse=wheelhouse)

    def provider(self) -> k8s.Provider | None:
        """An explicit provider for the stack's context; None: the ambient one."""
        if not self.kube_context:
            return None
        return k8s.Provider("cluster", context=self.kube_context)

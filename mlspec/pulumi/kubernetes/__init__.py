"""mlspec's Pulumi component resources for a Kubernetes cluster: what a compiled Kubernetes `__main__.py` uses."""

from mlspec.pulumi.kubernetes.images import ImageArgs, RegistryImage
from mlspec.pulumi.kubernetes.secrets import EndpointSecretsArgs, InstanceSecretArgs
from mlspec.pulumi.kubernetes.settings import ClusterSettings
from mlspec.pulumi.kubernetes.workspace import ClusterWorkspace, ClusterWorkspaceArgs

__all__ = ["ClusterSettings", "ClusterWorkspace", "ClusterWorkspaceArgs", "EndpointSecretsArgs", "ImageArgs",
           "InstanceSecretArgs", "RegistryImage"]

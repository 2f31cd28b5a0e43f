"""`ClusterWorkspace`: a workspace's images and compiled Kubernetes objects, applied to a cluster by Pulumi."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from mlspec.pulumi.kubernetes import objects as o
from mlspec.pulumi.kubernetes.images import ImageArgs, RegistryImage
from mlspec.pulumi.kubernetes.secrets import (
    EndpointSecrets,
    EndpointSecretsArgs,
    InstancePassword,
    InstanceSecretArgs,
)
from mlspec.pulumi.kubernetes.settings import ClusterSettings

WORKLOADS = {"Deployment", "StatefulSet", "Job", "CronJob"}  # what starts pods, which may read generated Secrets


@dataclass(frozen=True)
class ClusterWorkspaceArgs:
    """A workspace on a cluster.

    :param spec_root: the folder of the spec, relative to the project folder (job images read code and data).
    :param objects: the compiled objects, a YAML file of one document per object, relative to the project folder;
        their images are ``mlspec-image:KEY`` placeholders (the same objects `--format manifests` writes).
    :param images: every image the objects run, in build order (an image after the one it is built on).
    :param endpoints: the Secrets of each online endpoint, made here from generated passwords.
    :param instances: the password Secret of each compute instance, made here from a generated password.
    """

    spec_root: str
    objects: str
    images: list[ImageArgs]
    endpoints: list[EndpointSecretsArgs] = field(default_factory=list)
    instances: list[InstanceSecretArgs] = field(default_factory=list)


class ClusterWorkspace(pulumi.ComponentResource):
    """Builds and pushes the images, then creates each object as a typed pulumi-kubernetes resource with the
    images' digests in place: the Namespace first, every other object after it and after the objects its
    ``mlspec.io/depends-on`` annotation names (a training Job after the tracking server, a deployment after the
    Job that registers its model); the endpoints' Secrets before any Deployment. `references` maps image keys to
    the digests the pods run, `keys` each endpoint to its keys and `passwords` each instance to its JupyterLab
    password (secret outputs)."""

    references: dict[str, pulumi.Output[str]]
    keys: dict[str, pulumi.Output[dict[str, str]]]
    passwords: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: ClusterWorkspaceArgs, settings: ClusterSettings | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        self.settings = settings or ClusterSettings.from_config()
        provider = self.settings.provider()
        options = pulumi.ResourceOptions(providers=[provider] if provider else None)
        super().__init__("mlspec:kubernetes:Workspace", name, None, pulumi.ResourceOptions.merge(options, opts))
        child = pulumi.ResourceOptions(parent=self)
        built: dict[str, RegistryImage] = {}
        for image in args.images:
            built[image.key] = RegistryImage(name, args.spec_root, image, self.settings, built, child)
        self.references = {key: image.reference for key, image in built.items()}
        self.secrets = [EndpointSecrets(endpoint, self) for endpoint in args.endpoints]
        self.keys = {secrets.args.endpoint: secrets.keys for secrets in self.secrets if secrets.args.keys_secret}
        self.instances = [InstancePassword(name, instance, self) for instance in args.instances]
        self.passwords = {instance.args.instance: instance.password for instance in self.instances}
        self.resources = self._apply(load_objects(Path(args.objects)))
        self.register_outputs({"images": self.references})

    def _apply(self, objects: list[dict[str, Any]]) -> dict[str, pulumi.CustomResource]:
        created: dict[str, pulumi.CustomResource] = {}
        # One explicit provider per attached context, named after it; the rest go through the stack's.
        self.attached = {context: k8s.Provider(f"context-{context}", context=context, opts=pulumi.ResourceOptions(
            parent=self)) for context in sorted({c for c in map(o.kube_context, objects) if c})}
        namespaces = [obj for obj in objects if obj["kind"] == "Namespace"]
        for obj in namespaces:
            created[o.key(obj)] = o.create(obj, self.references, [], self, self._through(o.kube_context(obj)))
        generated = [secret for secrets in self.secrets for secret in secrets.create(
            _in(created, secrets.args.namespace, secrets.args.kube_context), self._through(secrets.args.kube_context))]
        generated += [secret for instance in self.instances
                      for secret in instance.create(_in(created, instance.args.namespace, None))]
        for obj in (obj for obj in objects if obj["kind"] != "Namespace"):
            for secrets in self.secrets:
                obj = secrets.annotate_gateway(obj)
            context = o.kube_context(obj)
            after = _in(created, obj["metadata"].get("namespace"), context)
            if obj["kind"] in WORKLOADS:
                after += generated
            for reference in o.dependencies(obj):
                found = created.get(f"{reference}@{context}") if context else None
                found = found or created.get(reference) or next(
                    (r for k, r in created.items() if k.startswith(f"{reference}@")), None)
                if found is None:
                    raise ValueError(f"{obj['kind']}/{obj['metadata']['name']} depends on {reference}, which comes "
                                     "later or not at all in the compiled objects; recompile")
                after.append(found)
            created[o.key(obj)] = o.create(obj, self.references, after, self, self._through(context))
        return created

    def _through(self, context: str | None) -> k8s.Provider | None:
        return self.attached[context] if context else None


def _in(created: dict[str, pulumi.CustomResource], namespace: str | None,
        context: str | None) -> list[pulumi.Resource]:
    """What an object in `namespace` of `context`'s cluster is created after: that namespace, when the objects
    create it."""
    found = created.get(f"Namespace/{namespace}" + (f"@{context}" if context else ""))
    return [found] if found is not None else []


def load_objects(path: Path) -> list[dict[str, Any]]:
    """The compiled objects, each a mapping with apiVersion, kind and metadata.name."""
    found = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    for doc in found:
        if not isinstance(doc, dict) or not {"apiVersion", "kind", "metadata"} <= doc.keys():
            raise ValueError(f"{path}: every document must be a Kubernetes object; recompile")
    return found

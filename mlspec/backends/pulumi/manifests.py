"""The Kubernetes target as plain manifests: the objects as YAML (one file each), a kustomization listing them,
the Dockerfiles of their images, and a README saying what to create and build before `kubectl apply -k`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlspec.backends.pulumi.compile import dockerfiles, scorings, write_files
from mlspec.backends.pulumi.kubernetes.assembly import build_objects, context_of
from mlspec.backends.pulumi.kubernetes.attached import attached_contexts, context_of_object, endpoint_contexts
from mlspec.backends.pulumi.kubernetes.batch import CLAIM_MOUNT
from mlspec.backends.pulumi.kubernetes.context import IMAGE_PLACEHOLDER, Context
from mlspec.backends.pulumi.kubernetes.endpoint_names import ExternalSecret, tracking_credentials
from mlspec.backends.pulumi.kubernetes.endpoint_names import external_secrets as endpoint_secrets
from mlspec.backends.pulumi.kubernetes.instances import PASSWORD_KEY, password_secret
from mlspec.backends.pulumi.kubernetes.meta import Object, dns_name
from mlspec.backends.pulumi.model import CompileError, ProgramModel
from mlspec.backends.pulumi.render import render

TAG_LENGTH = 16
DIGEST = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
GENERATED = ("manifests", "docker", "contexts")  # folders a compile replaces whole


@dataclass(frozen=True)
class ManifestSettings:
    """:param registry: where images are pushed, e.g. `ghcr.io/team` (images are REGISTRY/<workspace>-<folder>).
    :param digests: tagged reference -> `name@sha256:...` of the pushed image (what a CI build step records);
    empty: images by tag. :param node_pools: per compute, the node labels its pods are scheduled onto.
    :param namespace: the objects' namespace; None: the workspace's name. :param expose: how endpoints' gateways
    are reached (`cluster-ip` or `load-balancer`); None: cluster-ip."""

    registry: str
    digests: dict[str, str] = field(default_factory=dict)
    node_pools: dict[str, dict[str, str]] = field(default_factory=dict)
    namespace: str | None = None
    expose: str | None = None


@dataclass(frozen=True)
class Image:
    key: str  # the placeholder's key: an environment's or job's var, or "runtime"
    folder: str  # docker/<folder>/Dockerfile builds it
    reference: str  # REGISTRY/<workspace>-<folder>:<hash[:16]>
    pinned: str | None  # name@sha256:... once built


def images(program: ProgramModel, settings: ManifestSettings) -> list[Image]:
    """Every image the objects name, tagged by content hash, pinned where the digests file gives a digest."""
    registry = settings.registry.rstrip("/")
    if not registry:
        raise CompileError("the kubernetes target pulls images from a registry: pass --registry REGISTRY")
    found = []
    for key, folder, content_hash in (
            *((e.var, e.folder, e.content_hash) for e in (*program.shared, *program.environments)),
            *((j.var, j.folder, j.content_hash) for j in program.jobs),
            *((b.var, b.folder, b.content_hash) for b in program.batches),
            *((s.var, s.folder, s.content_hash) for s in scorings(program))):
        reference = f"{registry}/{dns_name(program.project, folder)}:{content_hash[:TAG_LENGTH]}"
        pinned = settings.digests.get(reference)
        if pinned is not None and not DIGEST.match(pinned):
            raise CompileError(f"the images file gives {pinned!r} for {reference}: expected NAME@sha256:<64 hex>")
        found.append(Image(key, folder, reference, pinned))
    if settings.digests:
        missing = [i.reference for i in found if i.pinned is None]
        if missing:
            raise CompileError("the images file has no digest for " + ", ".join(missing))
    return found


def resolve_images(value: Any, references: dict[str, str]) -> Any:
    """`value` with every image placeholder replaced by its reference."""
    if isinstance(value, dict):
        return {k: resolve_images(v, references) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_images(v, references) for v in value]
    if isinstance(value, str) and value.startswith(IMAGE_PLACEHOLDER):
        return references[value[len(IMAGE_PLACEHOLDER):]]
    return value


def context_folder(context: str | None) -> str:
    """Where the objects for a kubeconfig context go: the stack's cluster's at the top, an attached context's in
    `contexts/<context>/`, a kustomization of its own (`kubectl --context <context> apply -k` there)."""
    return "" if context is None else f"contexts/{dns_name(context)}/"


def file_name(index: int, obj: Object) -> str:
    """`NN-kind-name.yaml`: listed in apply order."""
    return f"{index:02d}-{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


class _Dumper(yaml.SafeDumper):
    """Multi-line text (a run contract, a script) as a literal block, readable in a review."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _text)


def to_yaml(obj: Object) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)


def external_secrets(program: ProgramModel, ctx: Context) -> list[ExternalSecret]:
    """The Secrets the pods read that the manifests do not hold (their values are the user's), with the command that
    creates each."""
    found = [ExternalSecret(
        password_secret(i), (PASSWORD_KEY,),
        f"kubectl create secret generic {password_secret(i)} -n {ctx.namespace} --from-literal={PASSWORD_KEY}="
        "\"$(python -c 'from jupyter_server.auth import passwd; print(passwd())')\"",
        f"JupyterLab's hashed password for compute instance '{i.name}'") for i in program.instances]
    where = endpoint_contexts(program.endpoints, program.computes, ctx)
    found += [secret for endpoint in program.endpoints for secret in endpoint_secrets(endpoint, where[endpoint.name])]
    if not ctx.own_tracking:  # the team's server: its credentials, in every cluster whose pods reach it
        clusters = [ctx, *attached_contexts(ctx, program.computes).values()]
        found += [tracking_credentials(c) for c in {(c.kube_context, c.namespace): c for c in clusters}.values()]
    return found


def manifest_files(program: ProgramModel, settings: ManifestSettings) -> dict[str, str]:
    """Every file of the manifests folder, relative to it, with its text."""
    ctx = context_of(program, settings.node_pools, settings.namespace, settings.expose)
    built = build_objects(program, ctx)
    found = images(program, settings)
    references = {i.key: i.pinned or i.reference for i in found}
    files: dict[str, str] = {}
    listed: dict[str | None, list[str]] = {None: []}
    for index, obj in enumerate(built.objects):
        context = context_of_object(obj)
        name = f"manifests/{file_name(index, obj)}"
        files[f"{context_folder(context)}{name}"] = to_yaml(resolve_images(obj, references))
        listed.setdefault(context, []).append(name)
    for context, names in listed.items():
        kustomization: Object = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                                 "resources": names}
        if settings.digests:
            kustomization["images"] = [{"name": i.reference.rsplit(":", 1)[0],
                                        "digest": (i.pinned or "").split("@", 1)[1]} for i in found]
        files[f"{context_folder(context)}kustomization.yaml"] = to_yaml(kustomization)
    files.update(dockerfiles(program))
    files["README.md"] = render("kubernetes.README.md.j2", program=program, images=found,
                                secrets=external_secrets(program, ctx), skipped=built.skipped,
                                namespace=ctx.namespace, pinned=bool(settings.digests),
                                node_pools=settings.node_pools, batch_mount=CLAIM_MOUNT,
                                contexts=[(c, context_folder(c)) for c in listed if c is not None])
    return dict(sorted(files.items()))


def write_manifests(program: ProgramModel, out_dir: Path | str, settings: ManifestSettings) -> list[Path]:
    """Write the manifests folder, replacing what an earlier compile wrote there."""
    return write_files(Path(out_dir), manifest_files(program, settings), GENERATED)


def read_digests(path: Path | str) -> dict[str, str]:
    """An images file: JSON, each image's tagged reference -> its pushed `name@sha256:...`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CompileError(f"cannot read the images file {path}: {error}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise CompileError(f"the images file {path} must be a JSON object of image reference -> name@sha256:...")
    return dict(data)

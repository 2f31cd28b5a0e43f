"""The Kubernetes program's resources (its images, the compiled objects, the Secrets it generates) and their diff."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from mlspec.backends.pulumi.changes.change import GeneratedAction, GeneratedChange
from mlspec.backends.pulumi.changes.fields import changed_paths, summarize
from mlspec.backends.pulumi.kubernetes.attached import KUBE_CONTEXT
from mlspec.backends.pulumi.kubernetes.context import IMAGE_PLACEHOLDER, Context
from mlspec.backends.pulumi.kubernetes.jobs import HASH_IN_NAME
from mlspec.backends.pulumi.kubernetes.meta import Object
from mlspec.backends.pulumi.kubernetes.program import endpoint_secrets, images, instance_secrets
from mlspec.backends.pulumi.model import ProgramModel

IMAGE_TYPE = "mlspec:kubernetes:Image"
HASH_LABEL = "mlspec.io/hash"
# Fields the API server will not change on a live object: pulumi-kubernetes replaces the object instead. A Job's
# whole spec (its pod template above all) is immutable; a workload's selector; a claim's storage but its size.
IMMUTABLE: dict[tuple[str, str], tuple[str, ...]] = {
    ("batch/v1", "Job"): ("spec",),
    ("apps/v1", "Deployment"): ("spec.selector",),
    ("apps/v1", "StatefulSet"): ("spec.selector", "spec.serviceName", "spec.volumeClaimTemplates",
                                 "spec.podManagementPolicy"),
    ("v1", "PersistentVolumeClaim"): ("spec.accessModes", "spec.storageClassName", "spec.volumeMode",
                                      "spec.volumeName", "spec.selector", "spec.dataSource"),
    ("v1", "Service"): ("spec.clusterIP",),
    ("scheduling.k8s.io/v1", "PriorityClass"): ("value", "preemptionPolicy"),
}


@dataclass(frozen=True)
class Generated:
    """One resource of the program: `key` is its identity, `body` what an update compares."""

    key: tuple[str | None, ...]
    type: str
    name: str
    body: Any
    immutable: tuple[str, ...] = ("",)  # "": every field
    lineage: tuple[str | None, ...] | None = None  # objects named by content hash: the name without it
    content_hash: str = ""  # its mlspec.io/hash label


def kubernetes_changes(base: list[Generated], head: list[Generated]) -> list[GeneratedChange]:
    """What `head`'s resources create, update or replace (in program order) and delete (last) against `base`'s. An
    object named by its content hash whose hash changed (a training Job and its ConfigMap) is a new object taking
    the old one's place: a replace, named by its new name."""
    before = {r.key: r for r in base}
    keys = {r.key for r in head}
    gone = [r for r in base if r.key not in keys]
    made = Counter(r.lineage for r in head if r.key not in before and r.lineage)
    lost = Counter(r.lineage for r in gone if r.lineage)
    successors = {r.lineage: r for r in gone if r.lineage and made[r.lineage] == 1 and lost[r.lineage] == 1}
    changes: list[GeneratedChange] = []
    taken: set[int] = set()
    for resource in head:
        old = before.get(resource.key)
        if old is None and resource.lineage in successors:
            old = successors.pop(resource.lineage)
            taken.add(id(old))
            paths = changed_paths(_unhashed(old), _unhashed(resource))
            changes.append(GeneratedChange(resource.type, resource.name, "replace",
                                           summarize(["metadata.name", *paths])))
        elif old is None:
            changes.append(GeneratedChange(resource.type, resource.name, "create"))
        elif paths := changed_paths(old.body, resource.body):
            replaced = any(_under(path, field) for path in paths for field in resource.immutable)
            action: GeneratedAction = "replace" if replaced else "update"
            changes.append(GeneratedChange(resource.type, resource.name, action, summarize(paths)))
    changes += [GeneratedChange(r.type, r.name, "delete") for r in gone if id(r) not in taken]
    return changes


def cluster_resources(program: ProgramModel, ctx: Context, objects: list[Object]) -> list[Generated]:
    """The program's resources in the order it makes them: images, namespaces, the Secrets it generates, then the
    other objects, every image placeholder naming the image's build (its content hash and its base's)."""
    built = images(program)
    tags: dict[str, str] = {}
    found: list[Generated] = []
    for image in built:
        base = tags.get(image.get("base") or "", "")
        tags[image["key"]] = hashlib.sha256(f"{image['content_hash']}\0{base}".encode()).hexdigest()[:16]
        # A rebuilt base rebuilds every image on it, though its own arguments are the same.
        found.append(Generated(("image", image["key"]), IMAGE_TYPE, image["key"], {**image, "base": image.get("base"),
                                                                               "base_build": base}))
    placed = [_placed(obj, tags) for obj in objects]
    found += [_object(obj) for obj in placed if obj["kind"] == "Namespace"]
    secrets = [(args["namespace"], args.get("kube_context"), name) for args in endpoint_secrets(program, ctx)
               for name in (args["token_secret"], args.get("keys_secret")) if name]
    secrets += [(args["namespace"], None, args["secret"]) for args in instance_secrets(program, ctx)]
    for namespace, context, name in secrets:
        metadata: Object = {"name": name, "namespace": namespace}
        if context:
            metadata["annotations"] = {KUBE_CONTEXT: context}
        found.append(_object({"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque"}))
    found += [_object(obj) for obj in placed if obj["kind"] != "Namespace"]
    return found


def _placed(obj: Object, tags: dict[str, str]) -> Object:
    """`obj` with each container's `mlspec-image:KEY` naming that image's build, `mlspec-image:KEY@BUILD`: the
    same image on both sides is no change, a rebuilt one is. Images are only in pod templates (a workload's, a
    CronJob's job template's); only what holds one is copied."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return obj
    if isinstance(spec.get("template"), dict):
        return {**obj, "spec": {**spec, "template": _template(spec["template"], tags)}}
    jobs = spec.get("jobTemplate")
    if isinstance(jobs, dict) and isinstance(jobs.get("spec"), dict) and isinstance(jobs["spec"].get("template"), dict):
        placed = {**jobs, "spec": {**jobs["spec"], "template": _template(jobs["spec"]["template"], tags)}}
        return {**obj, "spec": {**spec, "jobTemplate": placed}}
    return obj


def _template(template: Object, tags: dict[str, str]) -> Object:
    pod = template.get("spec")
    if not isinstance(pod, dict):
        return template
    placed = {**pod}
    for group in ("initContainers", "containers"):
        if isinstance(pod.get(group), list):
            placed[group] = [_container(c, tags) for c in pod[group]]
    return {**template, "spec": placed}


def _container(container: Object, tags: dict[str, str]) -> Object:
    image = container.get("image")
    if isinstance(image, str) and image.startswith(IMAGE_PLACEHOLDER):
        return {**container, "image": f"{image}@{tags.get(image[len(IMAGE_PLACEHOLDER):], '')}"}
    return container


def _object(obj: Object) -> Generated:
    api_version, kind, meta = obj["apiVersion"], obj["kind"], obj["metadata"]
    context = (meta.get("annotations") or {}).get(KUBE_CONTEXT)
    namespace, name = meta.get("namespace"), meta["name"]
    shown = (f"{namespace}/{name}" if namespace else name) + (f"@{context}" if context else "")
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    content_hash = (meta.get("labels") or {}).get(HASH_LABEL, "")
    lineage = None
    if content_hash and content_hash[:HASH_IN_NAME] in name:
        lineage = (context, api_version, kind, namespace, name.replace(content_hash[:HASH_IN_NAME], "*"))
    return Generated((context, api_version, kind, namespace, name), f"kubernetes:{group_version}:{kind}", shown, obj,
                     IMMUTABLE.get((api_version, kind), ()), lineage, content_hash)


def _unhashed(resource: Generated) -> Any:
    """The body with its content hash (as its label has it, and as its name does) left out, so that a new object
    in an old one's place lists the fields that differ beyond its name and labels."""
    def strip(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(resource.content_hash, "*").replace(resource.content_hash[:HASH_IN_NAME], "*")
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(resource.body) if resource.content_hash else resource.body


def _under(path: str, field: str) -> bool:
    return not field or path == field or path.startswith((f"{field}.", f"{field}["))

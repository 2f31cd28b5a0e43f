"""Names, labels and metadata every Kubernetes object of a workspace carries."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from mlspec.backends.pulumi.model import CompileError

MAX_NAME = 63  # a DNS-1123 label, which Services, Pods' hostnames and most names must be
HASH_LABEL_LENGTH = 16  # a label value holds 63 characters at most; 16 hex digits of a sha256 tell changes apart
MANAGED_BY = "mlspec"
LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-_.A-Za-z0-9]{0,61}[A-Za-z0-9])?)?")
LABEL_NAME = re.compile(r"[A-Za-z0-9](?:[-_.A-Za-z0-9]{0,61}[A-Za-z0-9])?")

Object = dict[str, Any]


def dns_name(*parts: str) -> str:
    """A DNS-1123 label from the parts, joined by '-': lower case, other characters as '-'; too long, it keeps its
    start and ends in a digest of the whole, so two long names never meet."""
    text = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-") or "x"
    if len(text) <= MAX_NAME:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{text[:MAX_NAME - 9].rstrip('-')}-{digest}"


def selector_labels(workspace: str, component: str, name: str) -> dict[str, str]:
    """The labels that pick a workload's pods: fixed for its life, since a Deployment's selector cannot change."""
    return {
        "app.kubernetes.io/name": dns_name(name),
        "app.kubernetes.io/component": component,
        "mlspec.io/workspace": dns_name(workspace),
    }


def labels(workspace: str, component: str, name: str, *, content_hash: str | None = None,
           tags: dict[str, str] | None = None) -> dict[str, str]:
    """Every label of an object: the selector's, the recommended app.kubernetes.io ones, its content hash (the
    first HASH_LABEL_LENGTH hex digits) and the spec's tags as `mlspec.io/tag.KEY`."""
    values = {f"mlspec.io/tag.{key}": value for key, value in sorted((tags or {}).items())}
    for key, value in values.items():
        if not (LABEL_VALUE.fullmatch(value) and LABEL_NAME.fullmatch(key.split("/", 1)[1])):
            raise CompileError(f"tag {key.split('/', 1)[1]}: {value!r} cannot be a Kubernetes label: a tag's key "
                               "and value must be at most 63 letters, digits, '-', '_' or '.', beginning and "
                               "ending with a letter or digit")
    values.update({
        **selector_labels(workspace, component, name),
        "app.kubernetes.io/instance": dns_name(workspace, name),
        "app.kubernetes.io/part-of": dns_name(workspace),
        "app.kubernetes.io/managed-by": MANAGED_BY,
    })
    if content_hash:
        values["mlspec.io/hash"] = content_hash[:HASH_LABEL_LENGTH]
    return values


def metadata(name: str, namespace: str | None, object_labels: dict[str, str],
             annotations: dict[str, str] | None = None) -> Object:
    """An object's metadata; namespace None for cluster-wide objects (Namespace, PriorityClass)."""
    meta: Object = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = dict(object_labels)
    if annotations:
        meta["annotations"] = dict(sorted(annotations.items()))
    return meta


def k8s_object(api_version: str, kind: str, meta: Object, **body: Any) -> Object:
    """One object, its fields in the order kubectl prints them."""
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **body}

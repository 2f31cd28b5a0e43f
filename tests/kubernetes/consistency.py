"""Checks between Kubernetes objects that no schema sees: selectors, ports, references, volumes, images and Pod
Security "restricted". `problems(objects)` returns every problem found, as text; an empty list passes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

Object = dict[str, Any]
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# Pod Security "restricted": the volume types it allows, and the one capability a container may add.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}
VOLUME_FIELDS = RESTRICTED_VOLUMES | {"hostPath", "nfs", "iscsi", "glusterfs", "rbd", "cephfs", "flexVolume",
                                      "awsElasticBlockStore", "gcePersistentDisk", "azureDisk", "azureFile", "fc"}


@dataclass
class Pod:
    """A pod template and the workload it belongs to."""

    owner: str  # Kind/name
    namespace: str | None
    labels: dict[str, str]
    spec: Object
    claim_templates: list[str] = field(default_factory=list)

    def containers(self) -> Iterator[Object]:
        yield from self.spec.get("initContainers", [])
        yield from self.spec.get("containers", [])


def _name(obj: Object) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def pods(objects: list[Object]) -> list[Pod]:
    found = []
    for obj in objects:
        if obj["kind"] not in WORKLOADS:
            continue
        spec = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
        template = spec["template"]
        claims = [c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])]
        found.append(Pod(_name(obj), obj["metadata"].get("namespace"), template.get("metadata", {}).get("labels", {}),
                         template["spec"], claims))
    return found


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _label_selector(selector: Object) -> dict[str, str]:
    if selector.get("matchExpressions"):
        raise AssertionError("matchExpressions are not checked; extend the checker")
    return dict(selector.get("matchLabels", {}))


def _declares(container: Object, port: Any) -> bool:
    return any(port in (p.get("name"), p.get("containerPort")) for p in container.get("ports", []))


def problems(objects: list[Object], *, external_secrets: set[str] = frozenset(),  # type: ignore[assignment]
             pinned: bool = False) -> list[str]:
    """Every inconsistency among `objects`. `external_secrets`: Secrets the user creates (documented beside the
    manifests). `pinned`: every image must be referenced by digest."""
    found: list[str] = []
    by_kind: dict[str, dict[tuple[str | None, str], Object]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[(obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj
    all_pods = pods(objects)
    namespaces = {name for _, name in by_kind.get("Namespace", {})}

    def exists(kind: str, namespace: str | None, name: str) -> Object | None:
        return by_kind.get(kind, {}).get((namespace, name))

    for obj in objects:
        namespace = obj["metadata"].get("namespace")
        if namespace is not None and namespace not in namespaces:
            found.append(f"{_name(obj)}: namespace {namespace} is not among the objects")

    for svc in by_kind.get("Service", {}).values():
        ns, selector = svc["metadata"].get("namespace"), svc["spec"].get("selector", {})
        matched = [p for p in all_pods if p.namespace == ns and _selects(selector, p.labels)]
        if not matched:
            found.append(f"{_name(svc)}: selector {selector} matches no pod template")
        for port in svc["spec"].get("ports", []):
            target = port.get("targetPort", port["port"])
            for pod in matched:
                if not any(_declares(c, target) for c in pod.spec["containers"]):
                    found.append(f"{_name(svc)}: targetPort {target} is not a port of {pod.owner}'s containers")

    for pod in all_pods:
        ns, spec = pod.namespace, pod.spec
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in pod.containers():
            where = f"{pod.owner} container {container['name']}"
            for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(probe_name)
                if probe is None:
                    continue
                action = probe.get("httpGet") or probe.get("tcpSocket") or probe.get("grpc")
                if action is not None and not _declares(container, action["port"]):
                    found.append(f"{where}: {probe_name} port {action['port']} is not a declared container port")
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes and mount["name"] not in pod.claim_templates:
                    found.append(f"{where}: volumeMount {mount['name']} has no volume")
            for env in container.get("env", []):
                source = env.get("valueFrom", {})
                for ref_kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                    if key in source:
                        ref = source[key]
                        found += _reference(exists, ref_kind, ns, ref["name"], [ref["key"]], where, external_secrets)
            for env_from in container.get("envFrom", []):
                for ref_kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                    if key in env_from:
                        found += _reference(exists, ref_kind, ns, env_from[key]["name"], [], where, external_secrets)
            image = container.get("image", "")
            if pinned and not DIGEST.search(image):
                found.append(f"{where}: image {image} is not pinned by digest")
            found += [f"{where}: {p}" for p in _restricted_container(container, spec)]
        for volume in volumes.values():
            where = f"{pod.owner} volume {volume['name']}"
            if "secret" in volume:
                keys = [i["key"] for i in volume["secret"].get("items", [])]
                found += _reference(exists, "Secret", ns, volume["secret"]["secretName"], keys, where, external_secrets)
            if "configMap" in volume:
                keys = [i["key"] for i in volume["configMap"].get("items", [])]
                found += _reference(exists, "ConfigMap", ns, volume["configMap"]["name"], keys, where, set())
            if "persistentVolumeClaim" in volume and not exists("PersistentVolumeClaim", ns,
                                                                  volume["persistentVolumeClaim"]["claimName"]):
                found.append(f"{where}: claim {volume['persistentVolumeClaim']['claimName']} is not among the objects")
            kinds = set(volume) - {"name"}
            if not kinds <= RESTRICTED_VOLUMES:
                found.append(f"{where}: volume type {sorted(kinds)} is not allowed by Pod Security restricted")
        found += [f"{pod.owner}: {p}" for p in _restricted_pod(spec)]
        priority = spec.get("priorityClassName")
        if priority and not exists("PriorityClass", None, priority):
            found.append(f"{pod.owner}: PriorityClass {priority} is not among the objects")
        subdomain = spec.get("subdomain")
        if subdomain:
            svc = exists("Service", ns, subdomain)
            if svc is None or svc["spec"].get("clusterIP") != "None" or not _selects(svc["spec"].get("selector", {}),
                                                                                      pod.labels):
                found.append(f"{pod.owner}: subdomain {subdomain} has no headless Service selecting its pods")
        account = spec.get("serviceAccountName")
        if account and account != "default" and not exists("ServiceAccount", ns, account):
            found.append(f"{pod.owner}: ServiceAccount {account} is not among the objects")

    for hpa in by_kind.get("HorizontalPodAutoscaler", {}).values():
        ref = hpa["spec"]["scaleTargetRef"]
        if not exists(ref["kind"], hpa["metadata"].get("namespace"), ref["name"]):
            found.append(f"{_name(hpa)}: scale target {ref['kind']}/{ref['name']} is not among the objects")
    for pdb in by_kind.get("PodDisruptionBudget", {}).values():
        selector = _label_selector(pdb["spec"].get("selector", {}))
        if not any(p.namespace == pdb["metadata"].get("namespace") and _selects(selector, p.labels)
                   and p.owner.split("/")[0] in ("Deployment", "StatefulSet", "ReplicaSet") for p in all_pods):
            found.append(f"{_name(pdb)}: selector {selector} selects no replicated workload's pods")
    for policy in by_kind.get("NetworkPolicy", {}).values():
        selector = _label_selector(policy["spec"].get("podSelector", {}))
        if selector and not any(p.namespace == policy["metadata"].get("namespace") and _selects(selector, p.labels)
                                for p in all_pods):
            found.append(f"{_name(policy)}: podSelector {selector} selects no pod")
    for quota in by_kind.get("ResourceQuota", {}).values():
        for expression in quota["spec"].get("scopeSelector", {}).get("matchExpressions", []):
            if expression["scopeName"] == "PriorityClass":
                found += [f"{_name(quota)}: PriorityClass {v} is not among the objects"
                          for v in expression["values"] if not exists("PriorityClass", None, v)]
    return found


def _reference(exists: Any, kind: str, namespace: str | None, name: str, keys: list[str], where: str,
               external: set[str]) -> list[str]:
    if kind == "Secret" and name in external:
        return []
    obj = exists(kind, namespace, name)
    if obj is None:
        return [f"{where}: {kind} {name} is neither among the objects nor a documented external Secret"]
    held = {**obj.get("data", {}), **obj.get("stringData", {}), **obj.get("binaryData", {})}
    return [f"{where}: {kind} {name} has no key {key}" for key in keys if key not in held]


def _restricted_pod(spec: Object) -> list[str]:
    found = [f"{flag} is set" for flag in ("hostNetwork", "hostPID", "hostIPC") if spec.get(flag)]
    context = spec.get("securityContext", {})
    if context.get("runAsNonRoot") is not True:
        found.append("pod securityContext.runAsNonRoot is not true")
    if context.get("runAsUser") == 0:
        found.append("pod runs as root (runAsUser 0)")
    return found


def _restricted_container(container: Object, pod: Object) -> list[str]:
    context = container.get("securityContext", {})
    pod_context = pod.get("securityContext", {})
    found = []
    if context.get("allowPrivilegeEscalation") is not False:
        found.append("allowPrivilegeEscalation is not false")
    if context.get("privileged"):
        found.append("privileged")
    if "ALL" not in context.get("capabilities", {}).get("drop", []):
        found.append("capabilities do not drop ALL")
    if set(context.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
        found.append("capabilities add more than NET_BIND_SERVICE")
    seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        found.append("seccompProfile is not RuntimeDefault or Localhost")
    if context.get("runAsNonRoot") is False or context.get("runAsUser") == 0:
        found.append("runs as root")
    if context.get("readOnlyRootFilesystem") is not True:
        found.append("root filesystem is writable")
    return found

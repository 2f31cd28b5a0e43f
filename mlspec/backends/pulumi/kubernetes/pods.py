"""Pod and container specs that pass the Pod Security "restricted" level, with sizes as requests and limits."""

from __future__ import annotations

from typing import Any

from mlspec.backends.pulumi.kubernetes.context import TRACKING_CREDENTIALS, TRACKING_CREDENTIALS_KEY, Context
from mlspec.backends.pulumi.model import ResourceSize

Object = dict[str, Any]

# The images' own non-root user (templates/pulumi/runtime.Dockerfile.j2 creates it with this uid); running as it
# keeps the image's virtualenv and home readable without a chown of every layer.
USER_ID = 1000
GPU_RESOURCE = "nvidia.com/gpu"
SCRATCH = "/tmp"  # the one writable folder every container gets (an emptyDir), the root filesystem being read-only


def container_security() -> Object:
    """What "restricted" asks of every container, plus a read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security() -> Object:
    return {
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "fsGroup": USER_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(size: ResourceSize) -> Object:
    """Requests equal to limits (the Guaranteed class, so a node under pressure evicts these last), GPUs as
    `nvidia.com/gpu`, which Kubernetes only takes as a limit equal to the request."""
    amounts: Object = {"cpu": f"{round(size.cpus * 1000)}m", "memory": f"{size.memory_mb}Mi"}
    if size.gpus:
        amounts[GPU_RESOURCE] = str(size.gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def env_list(values: dict[str, Any]) -> list[Object]:
    """`env:` entries in name order; a value that is a dict is a `valueFrom` (a Secret's key, a field)."""
    return [{"name": key, "valueFrom": value} if isinstance(value, dict) else {"name": key, "value": str(value)}
            for key, value in sorted(values.items())]


def secret_value(secret: str, key: str) -> Object:
    """An env value read from a Secret's key: `env_list({"TOKEN": secret_value("keys", "token")})`."""
    return {"secretKeyRef": {"name": secret, "key": key}}


def container(name: str, image: Any, command: list[str], size: ResourceSize, *, env: dict[str, Any] | None = None,
              ports: dict[str, int] | None = None, mounts: list[Object] | None = None, **probes: Object) -> Object:
    """A hardened container: `ports` maps port names to numbers; `probes` are startupProbe, readinessProbe,
    livenessProbe as Kubernetes spells them. /tmp is always mounted writable (see `pod_spec`)."""
    spec: Object = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "command": list(command)}
    if env:
        spec["env"] = env_list(env)
    if ports:
        spec["ports"] = [{"name": port_name, "containerPort": number, "protocol": "TCP"}
                         for port_name, number in ports.items()]
    spec.update({key: probes[key] for key in ("startupProbe", "readinessProbe", "livenessProbe") if key in probes})
    spec["resources"] = resources(size)
    spec["securityContext"] = container_security()
    spec["volumeMounts"] = [{"name": "scratch", "mountPath": SCRATCH}, *(mounts or [])]
    return spec


def http_probe(path: str, port: str, *, period: float, timeout: float, failure_threshold: int,
               initial_delay: float = 0) -> Object:
    """An HTTP GET probe on a named port; Kubernetes counts in whole seconds, at least 1."""
    return {
        "httpGet": {"path": path, "port": port},
        "initialDelaySeconds": int(initial_delay),
        "periodSeconds": max(1, round(period)),
        "timeoutSeconds": max(1, round(timeout)),
        "failureThreshold": failure_threshold,
    }


def pod_spec(containers: list[Object], *, volumes: list[Object] | None = None, restart_policy: str | None = None,
             scheduling: Object | None = None, service_account: str | None = None, **extra: Any) -> Object:
    """A pod spec: the restricted security context, no ServiceAccount token unless a `service_account` is named
    (the pods of mlspec do not call the Kubernetes API), a writable /tmp, and `scheduling` (nodeSelector,
    tolerations, priorityClassName) merged in."""
    spec: Object = {"automountServiceAccountToken": service_account is not None}
    if service_account is not None:
        spec["serviceAccountName"] = service_account
    spec["securityContext"] = pod_security()
    spec["containers"] = containers
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    spec.update(scheduling or {})
    spec.update(extra)
    spec["volumes"] = [{"name": "scratch", "emptyDir": {}}, *(volumes or [])]
    return spec


def with_tracking_credentials(ctx: Context, pod: Object) -> Object:
    """`pod` with the team's MLflow credentials (see context.TRACKING_CREDENTIALS) mounted, read-only, as MLflow's
    credentials file in the home (/tmp) of each container that talks to MLflow: a file rather than variables, so
    no child process inherits them. Optional: a server that asks for none needs no Secret. Unchanged for the
    workspace's own server."""
    if ctx.own_tracking:
        return pod
    volume = {"name": "mlflow-credentials", "secret": {
        "secretName": TRACKING_CREDENTIALS, "optional": True, "defaultMode": 0o440,
        "items": [{"key": TRACKING_CREDENTIALS_KEY, "path": "credentials"}]}}
    mount = {"name": "mlflow-credentials", "mountPath": f"{SCRATCH}/.mlflow", "readOnly": True}
    containers = [{**c, "volumeMounts": [*c.get("volumeMounts", []), mount]}
                  if any(e["name"] == "MLFLOW_TRACKING_URI" for e in c.get("env", [])) else c
                  for c in pod["containers"]]
    return {**pod, "containers": containers, "volumes": [*pod.get("volumes", []), volume]}

"""The workspace's MLflow tracking server: a Deployment on a PersistentVolumeClaim, and its Service.

`--serve-artifacts`: jobs and replicas upload and download artifacts through the server over HTTP, so the claim
is ReadWriteOnce, mounted by the server alone, and no pod needs a shared (ReadWriteMany) volume.
"""

from __future__ import annotations

from mlspec.backends.pulumi.kubernetes.context import TRACKING_SERVICE, Context, image
from mlspec.backends.pulumi.kubernetes.meta import Object, k8s_object, labels, metadata, selector_labels
from mlspec.backends.pulumi.kubernetes.pods import container, http_probe, pod_spec
from mlspec.backends.pulumi.kubernetes.workspace import allow_from_workspace
from mlspec.backends.pulumi.model import ResourceSize
from mlspec.runtime import servers

COMPONENT = "tracking"
STORAGE = "/mlspec"  # where the claim is mounted (the Docker target's volume path too)
SIZE = ResourceSize(cpus=1.0, memory_mb=2048, gpus=0)  # the server's own requests and limits
PORT = servers.MLFLOW_PORT


def tracking_objects(ctx: Context, storage_bytes: int, tags: dict[str, str]) -> list[Object]:
    """The PersistentVolumeClaim, Deployment, Service and the NetworkPolicy that lets the workspace's pods in."""
    own = labels(ctx.workspace, COMPONENT, TRACKING_SERVICE, tags=tags)
    pods = selector_labels(ctx.workspace, COMPONENT, TRACKING_SERVICE)
    service = f"{TRACKING_SERVICE}.{ctx.namespace}"
    allowed = [f"{host}{port}" for host in (TRACKING_SERVICE, service, f"{service}.svc",
                                            f"{service}.svc.cluster.local", "localhost", "127.0.0.1")
               for port in (f":{PORT}", "")]
    # The kubelet probes by the pod's IP; MLflow answers only to the hosts above, so the probes name one of them.
    health = {"path": "/health", "port": "http", "httpHeaders": [{"name": "Host", "value": "localhost"}]}

    def probe(period: float, failures: int) -> Object:
        found = http_probe("/health", "http", period=period, timeout=3, failure_threshold=failures)
        found["httpGet"] = dict(health)
        return found

    server = container(
        "mlflow", image("tracking"), servers.mlflow_server(f"{STORAGE}/tracking", allowed), SIZE,
        env={"HOME": "/tmp"}, ports={"http": PORT},
        mounts=[{"name": "store", "mountPath": STORAGE}],
        startupProbe=probe(2, 90), readinessProbe=probe(5, 3), livenessProbe=probe(10, 6))
    claim = k8s_object("v1", "PersistentVolumeClaim", metadata(TRACKING_SERVICE, ctx.namespace, own),
                       spec={"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": f"{storage_bytes // 2**20}Mi"}}})
    deployment = k8s_object(
        "apps/v1", "Deployment", metadata(TRACKING_SERVICE, ctx.namespace, own),
        spec={"replicas": 1,
              # One server owns the sqlite store on a ReadWriteOnce claim: the old pod goes before the new one.
              "strategy": {"type": "Recreate"},
              "selector": {"matchLabels": pods},
              "template": {"metadata": {"labels": own},
                           "spec": pod_spec([server], volumes=[
                               {"name": "store", "persistentVolumeClaim": {"claimName": TRACKING_SERVICE}}])}})
    svc = k8s_object("v1", "Service", metadata(TRACKING_SERVICE, ctx.namespace, own),
                     spec={"type": "ClusterIP", "selector": pods,
                           "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}]})
    return [claim, deployment, svc, allow_from_workspace(ctx, TRACKING_SERVICE, COMPONENT, pods, PORT, tags)]

"""A compute instance: JupyterLab as a one-pod StatefulSet whose notebooks live on its own claim, kept when the
instance is deleted, and a Service in front of it."""

from __future__ import annotations

from mlspec.backends.pulumi.kubernetes.context import Context, image
from mlspec.backends.pulumi.kubernetes.meta import Object, dns_name, k8s_object, labels, metadata, selector_labels
from mlspec.backends.pulumi.kubernetes.pods import container, http_probe, pod_spec, with_tracking_credentials
from mlspec.backends.pulumi.kubernetes.scheduling import scheduling
from mlspec.backends.pulumi.model import ComputeModel, EnvironmentModel, InstanceModel
from mlspec.runtime import servers

COMPONENT = "notebooks"
NOTEBOOKS = "/mlspec/notebooks"
PASSWORD_KEY = "hashed-password"
PASSWORD_DIR = "/etc/mlspec-jupyter"


def password_secret(instance: InstanceModel) -> str:
    """The Secret holding JupyterLab's hashed password: created by the user (the manifests' README says how), never
    generated into the manifests."""
    return f"{dns_name(instance.name)}-jupyter"


def instance_objects(instance: InstanceModel, env: EnvironmentModel, compute: ComputeModel | None,
                     ctx: Context, storage_bytes: int) -> list[Object]:
    name = dns_name(instance.name)
    own = labels(ctx.workspace, COMPONENT, name, content_hash=instance.content_hash, tags=instance.tags)
    pods = selector_labels(ctx.workspace, COMPONENT, name)

    def probe(period: float, failures: int) -> Object:
        return http_probe("/api", "http", period=period, timeout=2, failure_threshold=failures)

    # The hash is read from the Secret's file as JupyterLab starts: it is in no environment variable.
    lab = container(
        "jupyter", image(instance.environment),
        servers.jupyter_lab(NOTEBOOKS, password_file=f"{PASSWORD_DIR}/{PASSWORD_KEY}"), instance.size,
        env={**env.env, "HOME": "/tmp", "MLFLOW_TRACKING_URI": ctx.tracking_uri},
        ports={"http": servers.JUPYTER_PORT},
        mounts=[{"name": "notebooks", "mountPath": NOTEBOOKS},
                {"name": "password", "mountPath": PASSWORD_DIR, "readOnly": True}],
        startupProbe=probe(2, 90), readinessProbe=probe(5, 3), livenessProbe=probe(10, 6))
    claim = {"metadata": {"name": "notebooks", "labels": own},
             "spec": {"accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": f"{storage_bytes // 2**20}Mi"}}}}
    stateful = k8s_object(
        "apps/v1", "StatefulSet", metadata(name, ctx.namespace, own),
        spec={"serviceName": name, "replicas": 1, "selector": {"matchLabels": pods},
              # Deleting the instance (or scaling it to 0) keeps its notebooks' claim.
              "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
              "template": {"metadata": {"labels": own},
                           "spec": with_tracking_credentials(ctx, pod_spec(
                               [lab], scheduling=scheduling(ctx, compute, instance.size.gpus),
                               volumes=[{"name": "password", "secret": {
                                   "secretName": password_secret(instance), "defaultMode": 0o440,
                                   "items": [{"key": PASSWORD_KEY, "path": PASSWORD_KEY}]}}]))},
              "volumeClaimTemplates": [claim]})
    service = k8s_object("v1", "Service", metadata(name, ctx.namespace, own),
                         spec={"type": "ClusterIP", "selector": pods,
                               "ports": [{"name": "http", "port": instance.port, "targetPort": "http",
                                          "protocol": "TCP"}]})
    return [service, stateful]

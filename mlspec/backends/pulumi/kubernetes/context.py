"""What every object builder of the Kubernetes target reads: the workspace, its namespace and where images come from."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlspec.backends.pulumi.kubernetes.meta import dns_name

# Objects name their images by placeholder, `mlspec-image:<key>` where key is an EnvironmentModel's or a JobModel's
# var ("runtime" for the workspace's runtime image); each renderer puts in the real reference: the manifests a
# registry reference (pinned by digest where the digests are known), the Pulumi program the digest of the image it
# built and pushed. The objects themselves are then the same for both.
IMAGE_PLACEHOLDER = "mlspec-image:"
# The team's MLflow server's credentials (with `tracking.uri`): a Secret the user creates, key `credentials`, MLflow's
# own credentials file ([mlflow] mlflow_tracking_username / mlflow_tracking_password), mounted where MLflow reads it.
TRACKING_CREDENTIALS = "mlflow-credentials"
TRACKING_CREDENTIALS_KEY = "credentials"
TRACKING_SERVICE = "mlflow"  # the in-cluster MLflow server's Service (and Deployment) name
# How an online endpoint's gateway Service is reached (a kubernetes stack's `expose`): from inside the cluster
# alone (ClusterIP), or from outside it through the cloud's load balancer (LoadBalancer).
EXPOSE_CLUSTER_IP, EXPOSE_LOAD_BALANCER = "cluster-ip", "load-balancer"
SERVICE_TYPES = {EXPOSE_CLUSTER_IP: "ClusterIP", EXPOSE_LOAD_BALANCER: "LoadBalancer"}


def image(key: str) -> str:
    """The placeholder of the image built for `key` (an environment's or a job's var, or "runtime")."""
    return f"{IMAGE_PLACEHOLDER}{key}"


@dataclass(frozen=True)
class Context:
    """:param workspace: the workspace's name (ProgramModel.project). :param namespace: the namespace its objects
    live in. :param tracking_uri: the MLflow tracking server the pods use (the in-cluster one unless the spec names
    its own). :param node_pools: per compute name, the node labels its pods are scheduled onto (a node pool's
    label, given at compile time: `--node-pool COMPUTE=LABEL=VALUE`); a compute not named here goes wherever the
    scheduler puts it."""

    workspace: str
    namespace: str
    tracking_uri: str
    node_pools: dict[str, dict[str, str]] = field(default_factory=dict)
    own_tracking: bool = True  # the tracking server is the workspace's own, in its namespace
    expose: str = EXPOSE_CLUSTER_IP  # how endpoints' gateways are reached: in the cluster, or by a load balancer
    kube_context: str | None = None  # an attached compute's kubeconfig context; None: the stack's cluster

    @classmethod
    def of(cls, workspace: str, tracking_uri: str | None = None, namespace: str | None = None,
           node_pools: dict[str, dict[str, str]] | None = None, expose: str | None = None) -> Context:
        space = namespace or dns_name(workspace)
        return cls(workspace, space, tracking_uri or f"http://{TRACKING_SERVICE}.{space}.svc.cluster.local:5000",
                   dict(sorted((node_pools or {}).items())), tracking_uri is None, expose or EXPOSE_CLUSTER_IP)

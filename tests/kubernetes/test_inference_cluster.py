"""An online deployment on an inference cluster: its node pool, GPU placement and replicas spread over nodes."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

from mlspec.backends.pulumi.kubernetes.context import Context
from mlspec.backends.pulumi.kubernetes.scheduling import GPU_PRODUCT_LABEL, GPU_TOLERATION, replica_scheduling
from mlspec.backends.pulumi.model import ComputeModel, ResourceSize
from tests.kubernetes.conftest import compiled

KUBERNETES_VERSION = "1.37.0"


def _replicas() -> dict[str, Any]:
    objects = compiled("distributed", pinned=True).objects
    return next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "ddp-main")


def test_replicas_go_to_the_inference_clusters_pool_spread_over_its_nodes() -> None:
    deployment = _replicas()
    kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "serving"}
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname" and spread["maxSkew"] == 1
    # The spread counts this deployment's own pods: its selector, which the pods carry.
    assert spread["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert spread["labelSelector"]["matchLabels"].items() <= labels.items()
    # An inference cluster has no PriorityClass or quota of its own: the workspace's quota holds its replicas.
    assert "priorityClassName" not in pod


def test_a_gpu_inference_cluster_adds_its_gpu_model_and_toleration() -> None:
    ctx = Context.of("w", node_pools={"serving": {"agentpool": "gpu"}})
    compute = ComputeModel("serving", "inference-cluster", ResourceSize(4, 16384, 1), gpu_type="NVIDIA-L4")
    fields = replica_scheduling(ctx, compute, 1, {"app": "x"})
    assert fields["nodeSelector"] == {"agentpool": "gpu", GPU_PRODUCT_LABEL: "NVIDIA-L4"}
    assert fields["tolerations"] == [GPU_TOLERATION]
    assert fields["topologySpreadConstraints"][0]["labelSelector"] == {"matchLabels": {"app": "x"}}


def test_other_computes_keep_replicas_where_the_scheduler_puts_them() -> None:
    ctx = Context.of("w", node_pools={"cpu": {"pool": "batch"}})
    cluster = ComputeModel("cpu", "cluster", ResourceSize(1, 2048, 0))
    assert replica_scheduling(ctx, cluster, 0, {"app": "x"}) == {}
    assert replica_scheduling(ctx, None, 1, {"app": "x"}) == {"tolerations": [GPU_TOLERATION]}

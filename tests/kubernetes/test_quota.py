"""The workspace quota holds what its workloads may run at once, whichever builder made them."""

from __future__ import annotations

from mlspec.backends.pulumi.kubernetes.context import Context
from mlspec.backends.pulumi.kubernetes.quota import workspace_quota


def _deployment(name: str, replicas: int, cpu: str, memory: str, strategy: dict | None = None) -> dict:
    container = {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}
    return {"kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, **({"strategy": strategy} if strategy else {}),
                     "template": {"spec": {"containers": [container]}}}}


def test_replicas_autoscaler_maximum_and_rolling_surge_are_counted() -> None:
    ctx = Context.of("ws")
    objects = [
        _deployment("fixed", 4, "500m", "1Gi"),  # 4 + 25% surge = 5 pods
        _deployment("scaled", 1, "1", "512Mi", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}),
        {"kind": "HorizontalPodAutoscaler", "spec": {"scaleTargetRef": {"name": "scaled"}, "maxReplicas": 3}},
        _deployment("store", 1, "250m", "256Mi", {"type": "Recreate"}),  # no surge
    ]
    hard = workspace_quota(ctx, objects, [], {})["spec"]["hard"]
    # fixed 5 x 500m + scaled (3 + 1) x 1000m + store 1 x 250m
    assert hard["requests.cpu"] == f"{5 * 500 + 4 * 1000 + 250}m"
    assert hard["requests.memory"] == f"{5 * 1024 + 4 * 512 + 256}Mi"
    assert hard["pods"] == "10"

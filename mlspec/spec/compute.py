"""The Compute kind: where jobs, notebooks and deployments run."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mlspec.spec.base import Bytes, Resource, Seconds, Strict

Target = Literal["local", "docker", "kubernetes"]


class Resources(Strict):
    """CPU, memory and GPU of one node (a process, container or pod).

    The local target enforces only the fields a spec writes out: the defaults size docker and kubernetes nodes.
    """

    cpus: float = Field(1.0, gt=0, description="CPU cores per node (fractions allowed on docker and kubernetes). "
                        "Locally, when written out, each node is pinned to this many cores (a fraction rounds up).")
    memory: Bytes = Field(2 * 2**30, description="Memory per node, e.g. '512Mi', '2Gi'. Locally, when written out, "
                          "a node whose processes' resident memory goes over it is stopped and its job fails.")
    gpus: int = Field(0, ge=0, description="GPUs per node. Locally, when written out, each node sees its own GPUs "
                      "through CUDA_VISIBLE_DEVICES; more than this machine has is refused at plan time.")
    gpu_type: str | None = Field(None, description="GPU model, e.g. 'nvidia-a100' (a kubernetes node selector).")


class ComputeBase(Resource):
    kind: Literal["Compute"] = "Compute"
    target: Target | None = Field(
        None,
        description="Where it runs: 'local' processes, a 'docker' host or 'kubernetes'. "
        "Leave unset to take the stack's target, so one spec deploys anywhere.",
    )
    resources: Resources = Field(default_factory=Resources, description="Size of each node.")


class LocalCompute(ComputeBase):
    """This machine, running jobs one at a time as processes (Azure ML's local compute)."""

    type: Literal["local"] = "local"


class ClusterCompute(ComputeBase):
    """A training cluster that scales between min and max nodes and scales down when idle."""

    type: Literal["cluster"]
    min_nodes: int = Field(0, ge=0, description="Nodes kept running when idle (0: scale to zero).")
    max_nodes: int = Field(4, ge=1, description="Most nodes at once; bounds how many jobs run in parallel.")
    idle_time_before_scale_down: Seconds = Field(120, description="How long a node stays idle before it is released.")
    low_priority: bool = Field(False, description="Use preemptible capacity where the target offers it.")

    @model_validator(mode="after")
    def _min_le_max(self) -> ClusterCompute:
        if self.min_nodes > self.max_nodes:
            raise ValueError(f"min_nodes ({self.min_nodes}) is greater than max_nodes ({self.max_nodes})")
        return self


class InstanceCompute(ComputeBase):
    """A single development box running JupyterLab; notebooks live in workspace storage."""

    type: Literal["instance"]
    environment: str | None = Field(None, description="Environment the notebook kernel runs in.")
    port: int | None = Field(None, ge=1024, le=65535, description="JupyterLab port (default: a free port).")
    idle_time_before_shutdown: Seconds | None = Field(None, description="Stop the instance after this long idle.")


class InferenceClusterCompute(ComputeBase):
    """A serving cluster (AKS-like): deployments are spread across its nodes."""

    type: Literal["inference-cluster"]
    nodes: int = Field(1, ge=1, description="Nodes in the cluster.")


class AttachedCompute(ComputeBase):
    """Existing infrastructure: a Docker host reached over SSH, or a Kubernetes context."""

    type: Literal["attached"]
    host: str | None = Field(
        None, description="A Docker host, e.g. 'ssh://ubuntu@10.0.0.5' or 'unix:///var/run/docker.sock'.")
    kube_context: str | None = Field(None, description="A context in your kubeconfig.")
    namespace: str = Field("default", description="Kubernetes namespace for attached Kubernetes compute.")

    @model_validator(mode="after")
    def _one_endpoint(self) -> AttachedCompute:
        if (self.host is None) == (self.kube_context is None):
            raise ValueError("attached compute needs exactly one of 'host' (a Docker host) or 'kube_context'")
        return self


COMPUTE_TYPES: dict[str, type[ComputeBase]] = {
    "local": LocalCompute,
    "cluster": ClusterCompute,
    "instance": InstanceCompute,
    "inference-cluster": InferenceClusterCompute,
    "attached": AttachedCompute,
}

Compute = LocalCompute | ClusterCompute | InstanceCompute | InferenceClusterCompute | AttachedCompute

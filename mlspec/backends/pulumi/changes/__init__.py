"""Which resources of the compiled Pulumi program a spec change creates, updates, replaces or deletes, found by
building both sides' program models in memory (no file written, no Pulumi run)."""

from __future__ import annotations

from typing import Literal

from mlspec.backends.pulumi.changes.change import GeneratedAction, GeneratedChange
from mlspec.backends.pulumi.changes.docker import docker_changes
from mlspec.backends.pulumi.changes.kubernetes import Generated, cluster_resources, kubernetes_changes
from mlspec.backends.pulumi.kubernetes.assembly import build_objects, context_of
from mlspec.backends.pulumi.model import CompileError, ProgramModel, build_program
from mlspec.graph import Graph
from mlspec.spec.stacks import KubernetesStack

__all__ = ["GeneratedAction", "GeneratedChange", "generated_changes"]


def generated_changes(base: Graph, head: Graph, target: Literal["docker", "kubernetes"],
                      settings: KubernetesStack | None = None, *,
                      node_pools: dict[str, dict[str, str]] | None = None) -> list[GeneratedChange]:
    """What compiling `head` instead of `base` for `target` changes in the program: docker, its components
    (``mlspec:docker:TrainingJob`` ...); kubernetes, its images, objects and generated Secrets, placed by the
    stack's `settings` (namespace, how gateways are exposed) and `node_pools` as `mlspec compile` places them.
    Creates, updates and replaces in program order, then deletes: [] when nothing changes.

    Raises CompileError when either side cannot be compiled for the target, saying which.
    """
    if target == "docker":
        return docker_changes(_program(base, "base"), _program(head, "head"))
    if target == "kubernetes":
        return kubernetes_changes(_cluster(base, "base", settings, node_pools),
                                  _cluster(head, "head", settings, node_pools))
    raise CompileError(f"no generated program for target '{target}'; available: docker, kubernetes")


def _program(graph: Graph, side: str) -> ProgramModel:
    # Both sides' projects as if written into their spec folder: paths relative to it are then the same.
    try:
        return build_program(graph, graph.spec.root)
    except CompileError as error:
        raise CompileError(f"the {side} spec: {error}") from None


def _cluster(graph: Graph, side: str, settings: KubernetesStack | None,
             node_pools: dict[str, dict[str, str]] | None) -> list[Generated]:
    program = _program(graph, side)
    try:
        ctx = context_of(program, node_pools, settings.namespace if settings else None,
                         settings.expose if settings else None)
        built = build_objects(program, ctx)
    except CompileError as error:
        raise CompileError(f"the {side} spec: {error}") from None
    if built.skipped:
        raise CompileError(f"the {side} spec is not compiled for the kubernetes target yet: "
                           + "; ".join(built.skipped))
    return cluster_resources(program, ctx, built.objects)

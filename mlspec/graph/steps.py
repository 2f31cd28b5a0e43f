"""A pipeline's steps as a DAG: each step's upstream steps, files and content hash (its own, not the pipeline's)."""

from __future__ import annotations

import hashlib
import heapq
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlspec.graph.build import HASH_VERSION, Graph
from mlspec.spec.pipeline import AnyStep, PipelineJob, StepInput, parse_binding


@dataclass(frozen=True, slots=True)
class StepNode:
    name: str
    step: AnyStep
    deps: tuple[str, ...]  # upstream steps whose outputs it reads, sorted
    hash: str  # code, command, environment, compute and inputs as written; upstream outputs are added at run time
    files: dict[str, str]  # files the step reads (relative to the spec root) -> sha256
    spec: dict[str, Any]  # the step as written (canonical)


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _bound(value: object) -> object:
    return value.path if isinstance(value, StepInput) else value


def pipeline_steps(graph: Graph, node_id: str) -> dict[str, StepNode]:
    """The steps of pipeline `node_id` in a deterministic dependency order."""
    spec = graph.spec
    pipeline = spec.get(node_id)
    assert isinstance(pipeline, PipelineJob)
    files_of = spec.files.get(node_id, {})
    node_files = graph.nodes[node_id].files  # digested when the graph was built: a later edit is not this graph's
    targets = {ref.path: ref.target for ref in spec.references if ref.source == node_id}
    deps: dict[str, set[str]] = {name: set() for name in pipeline.jobs}
    nodes: dict[str, tuple[str, dict[str, str], dict[str, Any]]] = {}
    for name, step in pipeline.jobs.items():
        prefix = f"jobs.{name}."
        data = step.model_dump(mode="json", exclude_defaults=True)
        hasher = hashlib.sha256(f"{HASH_VERSION}\0step\0{_json(data)}\0".encode())
        files: dict[str, str] = {}
        for path, located in files_of.items():
            if path.startswith(prefix):
                files.update(_within(node_files, located, spec.root))
        upstream_nodes = {path: target for path, target in targets.items() if path.startswith(prefix)}
        for value in step.inputs.values():
            bound = parse_binding(_bound(value))
            if bound is not None and bound.scope == "step":
                deps[name].add(bound.step)
            elif bound is not None and bound.scope == "inputs" and bound.name in pipeline.inputs:
                given = pipeline.inputs[bound.name]
                hasher.update(f"input\0{bound.name}\0{_json(_dump(given))}\0".encode())
                path = f"inputs.{bound.name}"
                if path in files_of:
                    files.update(_within(node_files, files_of[path], spec.root))
                if path in targets:
                    upstream_nodes[path] = targets[path]
        for output in step.outputs.values():  # what the step registers, and as which model, is part of it
            bound = parse_binding(output) if isinstance(output, str) else None
            if bound is not None and bound.name in pipeline.outputs:
                hasher.update(f"output\0{_json(pipeline.outputs[bound.name].model_dump(mode='json'))}\0".encode())
                _model_hash(graph, pipeline.outputs[bound.name].register_as, hasher)
        for file in sorted(files):
            hasher.update(f"{file}\0{files[file]}\0".encode())
        for path in sorted(upstream_nodes):
            target = upstream_nodes[path]
            if target in graph.nodes:
                hasher.update(f"{path}\0{target}\0{graph.nodes[target].hash}\0".encode())
        nodes[name] = (hasher.hexdigest(), files, data)
    return {name: StepNode(name, pipeline.jobs[name], tuple(sorted(deps[name])), *nodes[name])
            for name in _order(deps)}


def _within(files: dict[str, str], located: Path, root: Path) -> dict[str, str]:
    """The pipeline's file digests that lie in `located` (a file, or a folder's tree), keyed as the graph keys them."""
    relative = Path(os.path.relpath(located, root)).as_posix()
    return {name: digest for name, digest in files.items() if name == relative or name.startswith(f"{relative}/")}


def _dump(value: object) -> object:
    return value.model_dump(mode="json") if isinstance(value, StepInput) else value


def _model_hash(graph: Graph, name: str | None, hasher: Any) -> None:
    """A registered model's declaration (flavor, loader, aliases, signature): changing it re-registers."""
    node = graph.nodes.get(f"model/{name}") if name else None
    if node is not None:
        hasher.update(f"model\0{node.spec}\0".encode())


def _order(deps: dict[str, set[str]]) -> list[str]:
    """Kahn's algorithm, smallest ready name first (a cycle was refused when the spec was resolved)."""
    remaining = {name: set(d) for name, d in deps.items()}
    ready = [name for name, d in remaining.items() if not d]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for other, upstream in remaining.items():
            if name in upstream:
                upstream.discard(name)
                if not upstream:
                    heapq.heappush(ready, other)
    return order + sorted(set(deps) - set(order))


def downstream(steps: dict[str, StepNode], name: str) -> set[str]:
    """Every step that reads `name`'s outputs, directly or through other steps."""
    found: set[str] = set()
    for other in steps.values():  # dependency order: an upstream is seen before its readers
        if name in other.deps or found & set(other.deps):
            found.add(other.name)
    return found

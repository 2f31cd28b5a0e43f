"""Graph stage: the resource DAG, content hashes and a deterministic topological order."""

from __future__ import annotations

import hashlib
import heapq
import json
from dataclasses import dataclass, field

from mlspec.diagnostics import Diagnostics
from mlspec.graph.digest import tree_digests
from mlspec.resolve import ResolvedSpec
from mlspec.spec import Resource

HASH_VERSION = "mlspec-graph-1"  # bump when the hash recipe changes, so every resource is re-planned once


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    resource: Resource
    deps: tuple[str, ...]  # every upstream id, sorted
    hash: str
    files: dict[str, str]  # file read by this resource (relative to the spec root) -> sha256
    spec: str = ""  # canonical JSON of the resource: what the hash covers (besides files and upstream) and its labels
    implicit: bool = False

    @property
    def kind(self) -> str:
        return self.resource.kind  # type: ignore[attr-defined]

    @property
    def name(self) -> str:
        return self.resource.name


@dataclass
class Graph:
    spec: ResolvedSpec
    nodes: dict[str, Node] = field(default_factory=dict)  # in topological order

    @property
    def order(self) -> list[str]:
        return list(self.nodes)

    def dependants(self, node_id: str) -> list[str]:
        return [n.id for n in self.nodes.values() if node_id in n.deps]


# Labels describe a resource without changing what it is: they are applied in place, never part of its hash.
LABEL_FIELDS = frozenset({"description", "tags"})
# A schedule says when to run again, not what runs: changing it re-arms, it never retrains or re-scores.
UNHASHED_FIELDS = LABEL_FIELDS | {"schedule"}


def canonical(resource: Resource) -> str:
    """The resource as canonical JSON: key order and defaults never change its hash."""
    return _json(resource.model_dump(mode="json", exclude_defaults=True))


def _json(value: dict[str, object]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def build_graph(spec: ResolvedSpec, diagnostics: Diagnostics) -> Graph:
    deps: dict[str, set[str]] = {rid: set() for rid in spec.resources}
    content_deps: dict[str, set[str]] = {rid: set() for rid in spec.resources}
    for ref in spec.references:
        if ref.source in deps and ref.target in deps:
            deps[ref.source].add(ref.target)
            if ref.content:
                content_deps[ref.source].add(ref.target)
    order = _topological(deps, spec, diagnostics)
    graph = Graph(spec)
    for rid in order:
        declared = spec.resources[rid]
        files: dict[str, str] = {}
        for path in spec.files.get(rid, {}).values():
            files.update(tree_digests(path, spec.root))
        data = declared.resource.model_dump(mode="json", exclude_defaults=True)
        spec_json = _json(data)
        hashed = _json({k: v for k, v in data.items() if k not in UNHASHED_FIELDS}) if UNHASHED_FIELDS & data.keys() \
            else spec_json
        hasher = hashlib.sha256()
        hasher.update(f"{HASH_VERSION}\0{rid}\0{hashed}\0".encode())
        for name in sorted(files):
            hasher.update(f"{name}\0{files[name]}\0".encode())
        for upstream in sorted(content_deps[rid]):
            hasher.update(f"{upstream}\0{graph.nodes[upstream].hash}\0".encode())
        graph.nodes[rid] = Node(rid, declared.resource, tuple(sorted(deps[rid])), hasher.hexdigest(), files,
                                spec_json, rid in spec.implicit)
    return graph


def _topological(deps: dict[str, set[str]], spec: ResolvedSpec, diagnostics: Diagnostics) -> list[str]:
    """Kahn's algorithm, always taking the smallest ready id, so the order never depends on input order."""
    remaining = {rid: set(d) for rid, d in deps.items()}
    users: dict[str, list[str]] = {rid: [] for rid in deps}
    for rid, upstream in deps.items():
        for up in upstream:
            users[up].append(rid)
    ready = [rid for rid, d in remaining.items() if not d]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        rid = heapq.heappop(ready)
        order.append(rid)
        for user in users[rid]:
            remaining[user].discard(rid)
            if not remaining[user]:
                heapq.heappush(ready, user)
    if len(order) < len(deps):
        stuck = {rid for rid in deps if rid not in order}
        _report_cycle(stuck, deps, spec, diagnostics)
    return order


def _report_cycle(stuck: set[str], deps: dict[str, set[str]], spec: ResolvedSpec, diagnostics: Diagnostics) -> None:
    start = min(stuck)
    path = [start]
    seen = {start: 0}
    current = start
    while True:  # every stuck node has a stuck upstream, so this walk must revisit a node
        current = min(d for d in deps[current] if d in stuck)
        if current in seen:
            cycle = [*path[seen[current]:], current]
            break
        seen[current] = len(path)
        path.append(current)
    first = spec.resources[cycle[0]]
    diagnostics.error(f"dependency cycle: {' → '.join(cycle)}", first.doc.span(("name",)),
                      hint="a resource cannot depend on itself through others; break one of these references")

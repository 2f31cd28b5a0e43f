"""The front half of mlspec in one call: load, validate, resolve and build the graph."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlspec.diagnostics import Diagnostics, SpecError
from mlspec.graph.build import Graph, build_graph
from mlspec.load import load
from mlspec.resolve import resolve
from mlspec.resolve.targets import check_targets
from mlspec.spec.capabilities import Target
from mlspec.validate import validate_documents


@dataclass
class Analysis:
    files: list[str]
    diagnostics: Diagnostics
    graph: Graph | None  # None when the spec has errors


def analyze(paths: list[str] | list[Path], target: Target | None = None) -> Analysis:
    """Run every stage up to the graph, collecting all diagnostics; stop before the graph on errors.

    With a target, every field the spec sets is also checked against what that target honours.
    """
    loaded = load(paths)
    diagnostics = loaded.diagnostics
    declared = validate_documents(loaded.documents, diagnostics)
    spec = resolve(declared, loaded.root, diagnostics)
    if target is not None:
        check_targets(declared.declared, spec, target, diagnostics)
    graph = None
    if not diagnostics.errors:
        graph = build_graph(spec, diagnostics)  # may find a dependency cycle
        if diagnostics.errors:
            graph = None
    return Analysis(loaded.files, diagnostics, graph)


def load_graph(paths: list[str] | list[Path], target: Target | None = None) -> Graph:
    """The graph of a valid spec; raises SpecError with every diagnostic otherwise."""
    analysis = analyze(paths, target)
    if analysis.graph is None:
        raise SpecError(analysis.diagnostics)
    return analysis.graph

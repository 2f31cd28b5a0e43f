"""The front half of mlspec in one call: load, validate, resolve and build the graph."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlspec.diagnostics import Diagnostics, SpecError
from mlspec.graph.build import Graph, build_graph
from mlspec.load import load
from mlspec.resolve import resolve
from mlspec.validate import validate_documents


@dataclass
class Analysis:
    files: list[str]
    diagnostics: Diagnostics
    graph: Graph | None  # None when the spec has errors


def analyze(paths: list[str] | list[Path]) -> Analysis:
    """Run every stage up to the graph, collecting all diagnostics; stop before the graph on errors."""
    loaded = load(paths)
    diagnostics = loaded.diagnostics
    declared = validate_documents(loaded.documents, diagnostics)
    spec = resolve(declared, loaded.root, diagnostics)
    graph = None
    if not diagnostics.errors:
        graph = build_graph(spec, diagnostics)  # may find a dependency cycle
        if diagnostics.errors:
            graph = None
    return Analysis(loaded.files, diagnostics, graph)


def load_graph(paths: list[str] | list[Path]) -> Graph:
    """The graph of a valid spec; raises SpecError with every diagnostic otherwise."""
    analysis = analyze(paths)
    if analysis.graph is None:
        raise SpecError(analysis.diagnostics)
    return analysis.graph

"""Graph stage: resources as a DAG with stable ids and content hashes."""

from mlspec.graph.build import Graph, Node, build_graph, canonical
from mlspec.graph.pipeline import Analysis, analyze, load_graph

__all__ = ["Analysis", "Graph", "Node", "analyze", "build_graph", "canonical", "load_graph"]

"""Attached Kubernetes contexts: their resources' objects filed for their own cluster; what cannot work refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from mlspec.backends.pulumi.model import CompileError
from mlspec.graph import analyze
from tests.kubernetes.conftest import SPECS, compiled, program_of

ANNOTATION = "mlspec.io/kube-context"


def test_each_cluster_has_its_own_folder_namespace_and_kustomization() -> None:
    files = compiled("attached", pinned=False).files
    top = yaml.safe_load(files["kustomization.yaml"])["resources"]
    edge = yaml.safe_load(files["contexts/edge-cluster/kustomization.yaml"])["resources"]
    assert all(f"contexts/edge-cluster/{rel}" in files for rel in edge)
    assert not set(top) & set(edge) and all(rel in files for rel in top)
    on_edge = [yaml.safe_load(files[f"contexts/edge-cluster/{rel}"]) for rel in edge]
    assert all(o["metadata"]["annotations"][ANNOTATION] == "edge-cluster" for o in on_edge)
    assert {o["metadata"].get("namespace", o["metadata"]["name"]) for o in on_edge} == {"ml-edge"}
    assert {o["kind"] for o in on_edge} >= {"Namespace", "NetworkPolicy", "ResourceQuota", "Job", "Deployment"}
    on_stack = [yaml.safe_load(files[rel]) for rel in top]
    assert not any(ANNOTATION in (o["metadata"].get("annotations") or {}) for o in on_stack)
    assert any(o["kind"] == "Job" and o["metadata"]["name"].startswith("train-") for o in on_stack)
    assert "kubectl --context edge-cluster apply -k contexts/edge-cluster/" in files["README.md"]
    assert "kubectl --context edge-cluster create secret generic mlp-internal-token -n ml-edge" in files["README.md"]


def test_the_edge_quota_counts_the_edge_workloads_alone() -> None:
    files = compiled("attached", pinned=False).files
    quotas = {rel: yaml.safe_load(text) for rel, text in files.items() if "resourcequota-workspace" in rel}
    (edge,) = (q for rel, q in quotas.items() if rel.startswith("contexts/"))
    (own,) = (q for rel, q in quotas.items() if not rel.startswith("contexts/"))
    assert edge["spec"]["hard"] != own["spec"]["hard"]


def _spec(tmp_path: Path, old: str, new: str) -> Path:
    spec = tmp_path / "attached"
    shutil.copytree(SPECS["attached"], spec)
    text = (spec / "mlspec.yaml").read_text()
    assert old in text
    (spec / "mlspec.yaml").write_text(text.replace(old, new))
    return spec


def test_a_docker_host_is_refused_at_its_line_on_kubernetes(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "kube_context: edge-cluster\nnamespace: ml-edge\n", "host: ssh://ml@edge.example.com\n")
    (error,) = analyze([spec], "kubernetes").diagnostics.errors
    assert error.path == "host" and "a Docker host is the docker target's" in error.summary


def test_an_endpoint_split_over_two_clusters_is_refused(tmp_path: Path) -> None:
    from mlspec.backends.pulumi.kubernetes.assembly import build_objects, context_of
    from mlspec.backends.pulumi.model import build_program

    spec = _spec(tmp_path, "traffic: {main: 100}\n",
                 "  other:\n    model: mlp@latest\n    compute: cpu\ntraffic: {main: 50, other: 50}\n")
    analysis = analyze([spec], "kubernetes")
    assert analysis.graph is not None, analysis.diagnostics
    program = build_program(analysis.graph, tmp_path / "out")
    with pytest.raises(CompileError, match="endpoint 'mlp': its deployments run on different clusters"):
        build_objects(program, context_of(program))
    assert program_of("attached").computes  # the committed spec itself compiles (the fixtures above)

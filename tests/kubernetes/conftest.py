"""Specs compiled to Kubernetes manifests, read back from the YAML they are written as."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlspec.backends.pulumi.manifests import ManifestSettings, images, manifest_files
from mlspec.backends.pulumi.model import ProgramModel, build_program

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = "localhost:5000/mlspec"  # what stacks/*-manifests are compiled with
SPECS = {"iris": ROOT / "examples" / "iris", "torch-digits": ROOT / "examples" / "torch-digits",
         "iris-scoring": ROOT / "examples" / "iris-scoring", "sweep": ROOT / "examples" / "sweep",
         "pipeline": ROOT / "examples" / "pipeline",
         "automl": ROOT / "examples" / "automl",
         "distributed": ROOT / "tests" / "kubernetes" / "specs" / "distributed",
         "attached": ROOT / "tests" / "kubernetes" / "specs" / "attached"}
STACKS = {"iris": "iris-manifests", "torch-digits": "torch-digits-manifests"}
NODE_POOLS = {"distributed": {"gpus": {"pool": "a100-spot"}, "serving": {"pool": "serving"}}}


@dataclass(frozen=True)
class Compiled:
    files: dict[str, str]
    objects: list[dict[str, Any]]
    external_secrets: set[str]


def program_of(name: str) -> ProgramModel:
    return build_program(_graph(name), ROOT / "stacks" / STACKS.get(name, name))


def _graph(name: str) -> Any:
    from mlspec.graph import analyze

    analysis = analyze([SPECS[name]], "kubernetes")
    assert analysis.graph is not None, analysis.diagnostics
    return analysis.graph


def fake_digests(program: ProgramModel) -> dict[str, str]:
    """What a CI build step would record for each image: its reference -> name@sha256 (a made-up digest)."""
    return {i.reference: f"{i.reference.rsplit(':', 1)[0]}@sha256:{hashlib.sha256(i.reference.encode()).hexdigest()}"
            for i in images(program, ManifestSettings(REGISTRY))}


def is_manifest(rel: str) -> bool:
    """An object's file: under manifests/, the stack's cluster's, or contexts/<context>/manifests/."""
    return rel.startswith("manifests/") or (rel.startswith("contexts/") and "/manifests/" in rel)


def compiled(name: str, pinned: bool) -> Compiled:
    program = program_of(name)
    settings = ManifestSettings(REGISTRY, fake_digests(program) if pinned else {}, NODE_POOLS.get(name, {}))
    files = manifest_files(program, settings)
    objects = [yaml.safe_load(text) for rel, text in files.items() if is_manifest(rel)]
    secrets = set(re.findall(r"kubectl (?:--context \S+ )?create secret generic (\S+)", files["README.md"]))
    return Compiled(files, objects, secrets)


@pytest.fixture(scope="session", params=sorted(SPECS))
def pinned(request: pytest.FixtureRequest) -> Compiled:
    """Each spec compiled with an images file: every image pinned by digest."""
    return compiled(request.param, pinned=True)


@pytest.fixture(scope="session")
def every_spec() -> dict[str, Compiled]:
    return {name: compiled(name, pinned=True) for name in sorted(SPECS)}

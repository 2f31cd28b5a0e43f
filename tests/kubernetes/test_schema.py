"""Every object the kubernetes target writes validates strictly against the Kubernetes 1.37 API schemas."""

from __future__ import annotations

import ast

import kubernetes_validate
import pytest

from tests.kubernetes.conftest import ROOT, Compiled

KUBERNETES_VERSION = "1.37.0"
BUILDERS = ROOT / "mlspec" / "backends" / "pulumi" / "kubernetes"


def test_every_object_validates_strictly(pinned: Compiled) -> None:
    for obj in pinned.objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_a_wrong_field_fails_validation(pinned: Compiled) -> None:
    job = next(o for o in pinned.objects if o["kind"] in ("Job", "Deployment"))
    broken = {**job, "spec": {**job["spec"], "bogus": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def _kinds_built() -> set[str]:
    """The kinds the builders' source can make: the second argument of every k8s_object(...) call."""
    kinds = set()
    for path in BUILDERS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "k8s_object" and len(node.args) > 1:
                kind = node.args[1]
                assert isinstance(kind, ast.Constant), f"{path.name}: a kind that is not a literal"
                kinds.add(kind.value)
    return kinds


def test_every_kind_a_builder_makes_is_validated(every_spec: dict[str, Compiled]) -> None:
    """A kind added to a builder must appear in a compiled spec here, or it would escape the schema check."""
    seen = {o["kind"] for compiled in every_spec.values() for o in compiled.objects}
    built = _kinds_built()
    assert built, "no k8s_object call found"
    assert built <= seen, f"kinds no test spec produces (add a spec that does): {sorted(built - seen)}"



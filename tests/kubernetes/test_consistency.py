"""The objects agree with each other: selectors, ports, references, volumes, images and Pod Security."""

from __future__ import annotations

import copy

from tests.kubernetes.conftest import Compiled, compiled
from tests.kubernetes.consistency import problems


def test_objects_are_consistent(pinned: Compiled) -> None:
    assert problems(pinned.objects, external_secrets=pinned.external_secrets, pinned=True) == []


def test_unpinned_images_are_found() -> None:
    loose = compiled("iris", pinned=False)
    found = problems(loose.objects, external_secrets=loose.external_secrets, pinned=True)
    assert found and all("not pinned by digest" in p for p in found)


def _first(objects: list[dict], kind: str) -> dict:
    return next(o for o in objects if o["kind"] == kind)


def test_the_checker_finds_each_kind_of_break(every_spec: dict[str, Compiled]) -> None:
    spec = every_spec["distributed"]
    clean = spec.objects
    assert problems(clean, external_secrets=spec.external_secrets) == []

    def broken(edit) -> list[str]:  # type: ignore[no-untyped-def]
        objects = copy.deepcopy(clean)
        edit(objects)
        return problems(objects, external_secrets=spec.external_secrets)

    def selector(objects: list[dict]) -> None:
        _first(objects, "Service")["spec"]["selector"]["app.kubernetes.io/name"] = "nobody"

    def target_port(objects: list[dict]) -> None:
        _first(objects, "Service")["spec"]["ports"][0]["targetPort"] = "nothing"

    def probe(objects: list[dict]) -> None:
        _first(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"][
            "port"] = 9999

    def mount(objects: list[dict]) -> None:
        _first(objects, "Job")["spec"]["template"]["spec"]["volumes"].pop()

    def config_map(objects: list[dict]) -> None:
        objects.remove(_first(objects, "ConfigMap"))

    def secret(objects: list[dict]) -> None:
        volumes = _first(objects, "StatefulSet")["spec"]["template"]["spec"]["volumes"]
        next(v for v in volumes if "secret" in v)["secret"]["secretName"] = "missing"

    def privileged(objects: list[dict]) -> None:
        _first(objects, "Job")["spec"]["template"]["spec"]["containers"][0]["securityContext"][
            "allowPrivilegeEscalation"] = True

    def headless(objects: list[dict]) -> None:
        objects.remove(next(o for o in objects if o["kind"] == "Service" and o["spec"].get("clusterIP") == "None"))

    def hpa(objects: list[dict]) -> None:
        objects.append({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                        "metadata": {"name": "x", "namespace": objects[0]["metadata"]["name"]},
                        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gone"},
                                 "maxReplicas": 2}})

    def pdb(objects: list[dict]) -> None:
        objects.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                        "metadata": {"name": "x", "namespace": objects[0]["metadata"]["name"]},
                        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "none"}}}})

    expected = {selector: "matches no pod template", target_port: "targetPort nothing", probe: "readinessProbe port",
                mount: "has no volume", config_map: "ConfigMap", secret: "Secret missing",
                privileged: "allowPrivilegeEscalation", headless: "no headless Service", hpa: "scale target",
                pdb: "selects no replicated workload"}
    for edit, words in expected.items():
        found = broken(edit)
        assert any(words in p for p in found), (edit.__name__, found)

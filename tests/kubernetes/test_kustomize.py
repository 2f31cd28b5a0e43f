"""`kubectl kustomize` (kustomize inside kubectl, offline) builds the written folder into exactly its objects."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.kubernetes.conftest import ROOT, STACKS, compiled
from tests.kubernetes.consistency import DIGEST

KUBECTL = shutil.which("kubectl")
# In CI a missing kubectl fails these tests (scripts/test installs it); elsewhere they are skipped with the reason.
pytestmark = pytest.mark.skipif(KUBECTL is None and not os.environ.get("CI"), reason="kubectl is not installed here")


def _kustomize(folder: Path) -> list[dict]:
    run = subprocess.run([str(KUBECTL), "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return [o for o in yaml.safe_load_all(run.stdout) if o]


def _key(obj: dict) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def test_pinned_folder_builds_into_its_objects_with_every_image_by_digest(tmp_path: Path) -> None:
    spec = compiled("distributed", pinned=True)
    for rel, text in spec.files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    built = _kustomize(tmp_path)
    assert sorted(map(_key, built)) == sorted(map(_key, spec.objects))
    images = [c["image"] for o in built if o["kind"] in ("Job", "Deployment", "StatefulSet")
              for c in [*o["spec"]["template"]["spec"]["containers"],
                        *o["spec"]["template"]["spec"].get("initContainers", [])]]
    assert images and all(DIGEST.search(i) for i in images)


@pytest.mark.parametrize("name", sorted(STACKS))
def test_committed_stack_builds(name: str) -> None:
    built = _kustomize(ROOT / "stacks" / STACKS[name])
    assert sorted(map(_key, built)) == sorted(map(_key, compiled(name, pinned=False).objects))


def test_the_readme_secret_commands_make_the_secrets_the_pods_read() -> None:
    """Each `kubectl create secret` line of the README, run as a client-side dry run (its value made up), makes
    a Secret that completes the objects: no reference is left to a documented external Secret."""
    import re

    from tests.kubernetes.consistency import problems

    spec = compiled("distributed", pinned=True)
    lines = re.findall(r"kubectl create secret generic (\S+) -n (\S+)[\s\\]+--from-(?:literal|file)=([\w-]+)",
                       spec.files["README.md"])
    assert lines
    secrets = []
    for name, namespace, key in lines:
        run = subprocess.run([str(KUBECTL), "create", "secret", "generic", name, "-n", namespace,
                              f"--from-literal={key}=made-up", "--dry-run=client", "-o", "yaml"],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        secrets.append(yaml.safe_load(run.stdout))
    assert problems([*spec.objects, *secrets], pinned=True) == []
    assert problems(spec.objects, pinned=True)  # without them, the references are found missing

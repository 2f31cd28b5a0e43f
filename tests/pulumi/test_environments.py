"""Environments from a conda file, a Python version and the user's Dockerfile, and models registered from a path,
as the Docker program builds them (under Pulumi mocks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlspec.backends.pulumi import CompileError, compile_project
from mlspec.graph import load_graph
from mlspec.pulumi.context import build_context_digest
from mlspec.pulumi.settings import Settings
from mlspec.runtime.register import Registration
from tests.pulumi.conftest import CONTAINER, ROOT, RegistryMocks, mock_digest
from tests.pulumi.harness import Captured, container_file, run_program

IMAGE = "docker:index/image:Image"
SPEC = """\
kind: Workspace
name: envs
---
kind: Environment
name: sk
conda_file: env/conda.yaml
---
kind: Environment
name: own
build: {context: ctx, dockerfile: docker/Dockerfile}
---
kind: Model
name: iris-file
path: model/iris.joblib
flavor: sklearn
aliases: [champion]
tags: {team: search}
---
kind: Endpoint
name: iris
type: online
deployments:
  main:
    model: iris-file@latest
    environment: sk
"""
CONDA = "name: sk\ndependencies:\n  - python=3.10\n  - pip\n  - pip:\n      - scikit-learn>=1.4\n"


def write_spec(root: Path, spec: str = SPEC, conda: str = CONDA) -> Path:
    for folder in ("env", "model", "ctx/docker", "ctx/src"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "mlspec.yaml").write_text(spec)
    (root / "env" / "conda.yaml").write_text(conda)
    (root / "model" / "iris.joblib").write_bytes(b"not really a model")
    (root / "ctx" / "docker" / "Dockerfile").write_text("FROM python:3.11-slim\nCOPY src/ /opt/src/\n")
    (root / "ctx" / "src" / "lib.py").write_text("VALUE = 1\n")
    (root / "ctx" / "notes.log").write_text("not sent\n")
    (root / "ctx" / ".dockerignore").write_text("# build output\n*.log\n")
    return root


def compiled(tmp_path: Path, **config: str) -> tuple[Path, Captured]:
    spec = write_spec(tmp_path / "spec")
    out = tmp_path / "stack"
    compile_project(load_graph([spec]), out)
    return out, run_program(out, config, mocks=RegistryMocks())


def test_a_conda_file_installs_its_pip_section_on_the_image_of_its_python(tmp_path: Path) -> None:
    out, captured = compiled(tmp_path)
    requirements = (out / "docker" / "environment-sk" / "requirements.txt").read_text().splitlines()
    assert requirements[-1] == "scikit-learn>=1.4" and any(r.startswith("mlflow") for r in requirements)
    dockerfile = (out / "docker" / "environment-sk" / "Dockerfile").read_text()
    assert 'v == "3.10" else' in dockerfile  # a base image of another Python stops the build
    image = captured.get(IMAGE, "sk")
    assert image.inputs["build"]["args"]["BASE_IMAGE"] == "python:3.10-slim"  # the default base, for 3.10
    pinned = run_program(out, {"mlspec:baseImage": "registry.local/py:{python}-bookworm"}, mocks=RegistryMocks())
    assert pinned.get(IMAGE, "sk").inputs["build"]["args"]["BASE_IMAGE"] == "registry.local/py:3.10-bookworm"
    assert pinned.get(IMAGE, "sk").inputs["imageName"] != image.inputs["imageName"]  # the base is in the tag


def test_the_base_image_of_a_python_version_follows_the_stack_setting() -> None:
    assert Settings().base_image_for(None) == "python:3.11-slim"
    assert Settings(base_image="python:3.12-bookworm").base_image_for("3.10") == "python:3.10-bookworm"
    assert Settings(base_image="docker.io/library/python:3.11").base_image_for("3.9") == "docker.io/library/python:3.9"
    assert Settings(base_image="mirror/py:{python}-slim").base_image_for(None) == "mirror/py:3.11-slim"
    assert Settings(base_image="mlspec-base:bookworm").base_image_for("3.10") == "mlspec-base:bookworm"  # checked


def test_a_dockerfile_build_is_the_base_of_mlspecs_runtime_and_tagged_by_what_it_sends(tmp_path: Path) -> None:
    out, captured = compiled(tmp_path)
    context = tmp_path / "spec" / "ctx"
    source = captured.get(IMAGE, "own-source")
    digest = build_context_digest(context, "docker/Dockerfile")
    assert source.inputs["imageName"] == f"envs-own-source:{digest}"
    assert (out / source.inputs["build"]["dockerfile"]).resolve() == (context / "docker" / "Dockerfile").resolve()
    layered = captured.get(IMAGE, "own")
    assert layered.inputs["build"]["args"]["BASE_IMAGE"] == source.inputs["imageName"]
    dockerfile = (out / "docker" / "environment-own" / "Dockerfile").read_text()
    assert "--system-site-packages" in dockerfile and "ENTRYPOINT []" in dockerfile

    (context / "notes.log").write_text("ignored by .dockerignore: nothing is rebuilt\n")
    assert run_program(out, {}).get(IMAGE, "own").inputs["imageName"] == layered.inputs["imageName"]
    (context / "src" / "lib.py").write_text("VALUE = 2\n")
    rebuilt = run_program(out, {})
    assert rebuilt.get(IMAGE, "own-source").inputs["imageName"] != source.inputs["imageName"]
    assert rebuilt.get(IMAGE, "own").inputs["imageName"] != layered.inputs["imageName"]


def test_dockerignore_patterns_decide_what_the_build_sends(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    for name in ("a.log", "data/big.csv", "data/keep.csv", "src.py"):
        (tmp_path / name).write_text(name)
    (tmp_path / ".dockerignore").write_text("*.log\ndata\n!data/keep.csv\n")
    before = build_context_digest(tmp_path, "Dockerfile")
    (tmp_path / "a.log").write_text("changed")
    (tmp_path / "data" / "big.csv").write_text("changed")
    assert build_context_digest(tmp_path, "Dockerfile") == before
    (tmp_path / "data" / "keep.csv").write_text("changed")
    assert build_context_digest(tmp_path, "Dockerfile") != before


def test_a_model_from_a_path_is_registered_by_a_container_and_served_at_its_version(tmp_path: Path) -> None:
    _, captured = compiled(tmp_path)
    image = captured.get(IMAGE, "iris-file")
    assert image.inputs["build"]["args"]["ENVIRONMENT_IMAGE"] == captured.get(IMAGE, "sk").inputs["imageName"]
    staged = Path(image.inputs["build"]["context"])
    register = captured.get(CONTAINER, "iris-file")
    assert register.inputs["command"] == ["python", "-m", "mlspec.runtime.envfiles", "python", "-m",
                                          "mlspec.runtime.register", "/tmp/mlspec/registration.json"]
    assert register.inputs["attach"] is True and register.inputs["mustRun"] is False
    contract = Registration.model_validate(container_file(register.inputs))
    assert contract.path == "/opt/mlspec-job/files/model/iris.joblib"
    assert (stack_file := tmp_path / "stack" / staged / "files" / "model" / "iris.joblib").is_file(), stack_file
    assert contract.flavor == "sklearn" and contract.aliases == ["champion"]
    assert contract.tracking_uri == "http://mlflow:5000" and contract.experiment == "mlspec-models"
    content_hash = contract.tags["mlspec.hash"]
    replica = captured.get(CONTAINER, "iris-main-0").inputs["command"]
    assert replica[replica.index("--model-uri") + 1] == "models:/iris-file/1"
    assert replica[replica.index("--sha256") + 1] == mock_digest("iris-file", content_hash)
    assert captured.exports["iris-file.models"] == {"iris-file": 1}
    labels = container_file(captured.get(CONTAINER, "labels").inputs)
    assert labels["models"] == [{"name": "iris-file", "content_hash": content_hash, "tags": {"team": "search"},
                                "description": ""}]
    assert register.urn in captured.get(CONTAINER, "labels").dependencies


def test_a_changed_model_file_is_registered_again_and_rolls_what_serves_it(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec")
    out = tmp_path / "stack"
    compile_project(load_graph([spec]), out)
    mocks = RegistryMocks()
    first = run_program(out, {}, mocks=mocks)
    (spec / "model" / "iris.joblib").write_bytes(b"another model")
    with pytest.raises(Exception, match="changed since this program was compiled"):
        run_program(out, {}, mocks=mocks)
    compile_project(load_graph([spec]), out)
    second = run_program(out, {}, mocks=mocks)
    assert second.get(CONTAINER, "iris-file").inputs["name"] != first.get(CONTAINER, "iris-file").inputs["name"]
    replica = second.get(CONTAINER, "iris-main-0").inputs["command"]
    assert replica[replica.index("--model-uri") + 1] == "models:/iris-file/2"


def test_the_kubernetes_target_still_refuses_path_models_and_dockerfile_builds(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec")
    with pytest.raises(CompileError, match=r"models registered from a path.*your own Dockerfile"):
        compile_project(load_graph([spec]), tmp_path / "k8s", target="kubernetes")


@pytest.mark.e2e
def test_the_registration_prints_the_result_line_the_program_reads(tmp_path: Path) -> None:
    """The registration container's own command, run here against a sqlite store with the iris example's model."""
    model = tmp_path / "model.joblib"
    train = ("import joblib, pandas as pd; from sklearn.linear_model import LogisticRegression; "
             f"d = pd.read_csv({str(ROOT / 'examples/iris/data/iris.csv')!r}); "
             "joblib.dump(LogisticRegression(max_iter=300).fit(d.drop(columns='species'), d['species']), "
             f"{str(model)!r})")
    subprocess.run([sys.executable, "-c", train], check=True, timeout=120)
    contract = Registration(name="iris-file", path=str(model), tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                            flavor="sklearn", tags={"mlspec.hash": "abc"}, artifact_location=str(tmp_path / "art"))
    contract.dump(tmp_path / "registration.json")
    from mlspec.runtime.train import registered_digests, registered_versions

    outputs = []
    for _ in range(2):  # the same files again: the version that holds them is reused
        done = subprocess.run([sys.executable, "-m", "mlspec.runtime.register", str(tmp_path / "registration.json")],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert registered_versions(outputs[0]) == registered_versions(outputs[1]) == {"iris-file": 1}
    assert len(registered_digests(outputs[0])["iris-file"]) == 64
    (tmp_path / "missing.json").write_text(contract.model_copy(update={"path": str(tmp_path / "nope")})
                                           .model_dump_json())
    failed = subprocess.run([sys.executable, "-m", "mlspec.runtime.register", str(tmp_path / "missing.json")],
                            capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1 and "nope" in failed.stderr


def test_a_state_dict_model_carries_its_loader_module_into_the_image(tmp_path: Path) -> None:
    spec = tmp_path / "spec"
    (spec / "nets").mkdir(parents=True)
    (spec / "mlspec.yaml").write_text(
        "kind: Workspace\nname: nets\ndefaults: {environment: torch}\n---\n"
        "kind: Environment\nname: torch\nrequirements: [torch]\n---\n"
        "kind: Model\nname: mlp\npath: nets/weights.pt\nflavor: torch\nloader: nets.mlp:build\n")
    (spec / "nets" / "weights.pt").write_bytes(b"weights")
    (spec / "nets" / "mlp.py").write_text("def build():\n    return None\n")
    out = tmp_path / "stack"
    compile_project(load_graph([spec]), out)
    captured = run_program(out, {}, mocks=RegistryMocks())
    register = captured.get(CONTAINER, "mlp")
    contract = Registration.model_validate(container_file(register.inputs))
    assert contract.loader == "nets.mlp:build" and contract.code == "/opt/mlspec-job/files"
    staged = out / captured.get(IMAGE, "mlp").inputs["build"]["context"] / "files"
    assert sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()) == [
        "nets/mlp.py", "nets/weights.pt"]
    # Registered in the workspace's default environment, the one that can load it.
    assert captured.get(IMAGE, "mlp").inputs["build"]["args"]["ENVIRONMENT_IMAGE"] == \
        captured.get(IMAGE, "torch").inputs["imageName"]
    (spec / "nets" / "mlp.py").write_text("def build():\n    return 1\n")  # a new loader: registered again
    compile_project(load_graph([spec]), out)
    again = run_program(out, {}, mocks=RegistryMocks())
    assert again.get(CONTAINER, "mlp").inputs["name"] != register.inputs["name"]
    assert again.get(IMAGE, "mlp").inputs["imageName"] != captured.get(IMAGE, "mlp").inputs["imageName"]

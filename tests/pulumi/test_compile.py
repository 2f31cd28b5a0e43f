"""Compiling specs for the Docker target: deterministic bytes, relative paths only, committed stacks current."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from mlspec.backends.pulumi import CompileError, build_program, compile_project
from mlspec.backends.pulumi.compile import project_files
from mlspec.backends.pulumi.model import RUNTIME_REQUIREMENTS, TRACKING_REQUIREMENTS
from mlspec.backends.pulumi.render import templates_root, tojson
from mlspec.graph import load_graph
from tests.pulumi.conftest import ROOT, compile_copy

EXAMPLES = ["iris", "torch-digits"]


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".build" not in p.parts}


@pytest.mark.parametrize("example", EXAMPLES)
def test_committed_stack_is_current(example: str) -> None:
    stack = ROOT / "stacks" / example
    expected = project_files(build_program(load_graph([ROOT / "examples" / example]), stack))
    on_disk = {k: v.decode() for k, v in _tree(stack).items()} if stack.is_dir() else {}
    hint = f"stacks/{example} is stale: run `mlspec compile examples/{example} --target docker -o stacks/{example}`"
    assert sorted(on_disk) == sorted(expected), hint
    for name, text in expected.items():
        assert on_disk[name] == text, f"{hint} ({name} differs)"


def test_compiling_twice_is_byte_identical(tmp_path: Path) -> None:
    first = compile_copy(tmp_path / "a", "iris")
    before = _tree(first)
    graph = load_graph([tmp_path / "a" / "examples" / "iris"])
    compile_project(graph, first)
    assert _tree(first) == before
    second = compile_copy(tmp_path / "b", "iris")  # another folder, same layout: the same bytes
    assert _tree(second) == before


def test_output_holds_no_machine_paths_or_timestamps(iris_project: Path) -> None:
    main = (iris_project / "__main__.py").read_text()
    assert 'spec_root="../../examples/iris"' in main
    for name, data in _tree(iris_project).items():
        text = data.decode()
        assert str(iris_project.parent.parent) not in text, name
        assert str(ROOT) not in text, name
        assert not re.search(r"\b20\d\d-\d\d-\d\d", text), f"{name} holds a date"


def test_project_layout_and_contract_files(iris_project: Path) -> None:
    files = set(_tree(iris_project))
    assert {"Pulumi.yaml", "Pulumi.dev.yaml", "__main__.py", "requirements.txt"} <= files
    assert {"docker/runtime/Dockerfile", "docker/environment-sklearn/Dockerfile",
            "docker/environment-sklearn/requirements.txt", "docker/job-train/Dockerfile"} <= files
    assert yaml.safe_load((iris_project / "Pulumi.yaml").read_text())["runtime"] == {"name": "python"}
    stack = (iris_project / "Pulumi.dev.yaml").read_text()
    assert "mlspec:baseImage: python:3.11-slim" in stack and "mlspec:publishAddress: 127.0.0.1" in stack
    runtime = (iris_project / "docker/runtime/Dockerfile").read_text()
    assert "python3 -m venv /opt/mlspec" in runtime and "--no-index --find-links /tmp/wheels" in runtime
    assert "USER mlspec" in runtime and "latest" not in runtime
    assert (iris_project / "docker/runtime/requirements.txt").read_text().splitlines()[1:] == [*RUNTIME_REQUIREMENTS]
    # An environment without a base image of its own is built on the runtime image: only what it lacks is added.
    dockerfile = (iris_project / "docker/environment-sklearn/Dockerfile").read_text()
    assert "FROM ${RUNTIME_IMAGE}" in dockerfile and "--prefix /opt/environment" in dockerfile
    assert "--no-index --find-links /tmp/wheels" in dockerfile and "latest" not in dockerfile
    assert "USER mlspec" not in dockerfile.split("FROM ${RUNTIME_IMAGE}\n")[-1]  # the runtime image's user stays
    requirements = (iris_project / "docker/environment-sklearn/requirements.txt").read_text().splitlines()
    assert requirements[1:] == ["scikit-learn>=1.4", "mlflow-skinny>=2.12"]
    compile((iris_project / "__main__.py").read_text(), "__main__.py", "exec")  # valid Python


def test_runtime_requirements_match_pyproject() -> None:
    """Each is what pyproject.toml declares, or comes with what it declares (MLflow's client, numpy and pandas come
    with mlflow), so the wheelhouse built from pyproject.toml holds them all."""
    text = (ROOT / "pyproject.toml").read_text()
    with_mlflow = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in metadata.requires("mlflow") or []}
    for requirement in [*RUNTIME_REQUIREMENTS, *TRACKING_REQUIREMENTS]:
        name = re.split(r"[<>=]", requirement, maxsplit=1)[0]
        assert f'"{requirement}' in text or name.lower() in with_mlflow, f"{requirement}: not from pyproject.toml"


def test_templates_are_found_and_values_are_python_literals() -> None:
    assert (templates_root() / "pulumi" / "__main__.py.j2").is_file()
    assert tojson({"b": 1, "a": [2.5, "x"]}) == '{"a": [2.5, "x"], "b": 1}'
    with pytest.raises(TypeError):
        tojson({"a": None})
    with pytest.raises(TypeError):
        tojson([True])


def test_unsupported_environment_is_a_clear_error(tmp_path: Path) -> None:
    """Your own Dockerfile compiles for docker; the kubernetes target, whose images are built outside, refuses it."""
    spec = tmp_path / "mlspec.yaml"
    (tmp_path / "ctx").mkdir()
    spec.write_text("kind: Workspace\nname: w\n---\nkind: Environment\nname: own\nbuild: {context: ctx}\n")
    compile_project(load_graph([tmp_path]), tmp_path / "out")
    with pytest.raises(CompileError, match=r"environment/own: your own Dockerfile"):
        compile_project(load_graph([tmp_path]), tmp_path / "k8s", target="kubernetes")

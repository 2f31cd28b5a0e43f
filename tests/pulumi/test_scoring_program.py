"""examples/iris-scoring compiled for docker and run under Pulumi's mocks: the deployment's scoring script is baked
onto its environment's image with its schema, and its replicas start the scoring server on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pulumi.conftest import CONTAINER, RegistryMocks, compile_copy
from tests.pulumi.harness import Captured, run_program

IMAGE = "docker:index/image:Image"
FILES = "/opt/mlspec-job/files"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_copy(tmp_path_factory.mktemp("scoring"), "iris-scoring")


@pytest.fixture(scope="module")
def program(stack: Path) -> Captured:
    return run_program(stack, {}, mocks=RegistryMocks())


def test_the_script_and_its_schema_are_baked_onto_the_environment_image(stack: Path, program: Captured) -> None:
    image = program.get(IMAGE, "iris-scored-blue-scoring")
    build = image.inputs["build"]
    assert build["dockerfile"] == "docker/scoring-iris-scored-blue/Dockerfile"
    assert build["args"] == {"ENVIRONMENT_IMAGE": program.get(IMAGE, "sklearn").inputs["imageName"]}
    staged = stack / build["context"] / "files"
    assert sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()) == [
        "score/schema.json", "score/score.py"]
    dockerfile = (stack / build["dockerfile"]).read_text()
    assert f"COPY --chown=mlspec files/ {FILES}/" in dockerfile


def test_replicas_run_that_image_and_the_server_with_the_script(program: Captured) -> None:
    replica = program.get(CONTAINER, "iris-scored-blue-0")
    assert replica.inputs["image"] == program.get(IMAGE, "iris-scored-blue-scoring").inputs["imageName"]
    command = replica.inputs["command"]
    start = command.index("--code")
    assert command[start:start + 6] == ["--code", f"{FILES}/score", "--scoring-script", "score.py",
                                        "--input-schema", f"{FILES}/score/schema.json"]
    assert command[command.index("-m") + 1:].count("mlspec.runtime.serving") == 1


def test_an_edited_script_is_a_new_image_and_new_replicas(tmp_path: Path, program: Captured) -> None:
    def edit(spec: Path) -> None:
        script = spec / "score" / "score.py"
        script.write_text(script.read_text() + "\n# edited\n")

    edited = run_program(compile_copy(tmp_path, "iris-scoring", edit), {}, mocks=RegistryMocks())
    before, after = (p.get(IMAGE, "iris-scored-blue-scoring").inputs["imageName"] for p in (program, edited))
    assert before != after
    names = [p.get(CONTAINER, "iris-scored-blue-0").inputs["name"] for p in (program, edited)]
    assert names[0] != names[1]  # a new generation: started before the old one is removed
    assert edited.get(IMAGE, "sklearn").inputs["imageName"] == program.get(IMAGE, "sklearn").inputs["imageName"]

"""Scoring scripts compiled for docker and run under Pulumi's mocks: examples/iris-scoring's deployment has its script
baked onto its environment's image with its schema, and its replicas start the scoring server on them; a batch
endpoint's script is baked into its run's image."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlspec.backends.pulumi.kubernetes.batch import batch_run
from mlspec.backends.pulumi.kubernetes.context import Context
from mlspec.backends.pulumi.model import build_program
from mlspec.graph import load_graph
from tests.pulumi.batch_spec import SPEC, batch_spec
from tests.pulumi.conftest import CONTAINER, RegistryMocks, compile_copy, compile_in_layout
from tests.pulumi.harness import Captured, container_file, run_program

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



def test_a_batch_endpoints_scoring_script_is_baked_into_its_run_and_named_in_its_contract(tmp_path: Path) -> None:
    """The batch run's image holds the script's folder beside the data; its contract names the script there (the
    Kubernetes Job's contract too)."""
    spec = batch_spec(tmp_path / "examples" / "iris-batch",
                      SPEC + "code_configuration: {code: score/, scoring_script: batch_score.py}\n")
    (spec / "score").mkdir()
    (spec / "score" / "batch_score.py").write_text("def run(mini_batch):\n    return [0] * len(mini_batch)\n")
    (batch,) = build_program(load_graph([spec]), tmp_path / "stacks" / "k8s").batches
    assert "score/batch_score.py" in batch.files and "data/flowers.csv" in batch.files
    contract = batch_run(batch, Context.of("iris-batch"))
    assert (contract.code, contract.scoring_script) == (f"{FILES}/score", "batch_score.py")

    stack = compile_in_layout(spec, tmp_path)
    captured = run_program(stack, {}, mocks=RegistryMocks())
    run = container_file(captured.get(CONTAINER, "nightly").inputs)
    assert (run["code"], run["scoring_script"]) == (f"{FILES}/score", "batch_score.py")
    context = stack / captured.get(IMAGE, "nightly").inputs["build"]["context"]
    assert (context / "files" / "score" / "batch_score.py").is_file()

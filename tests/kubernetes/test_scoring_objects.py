"""examples/iris-scoring for Kubernetes: the deployment's replicas run an image of their own (the environment's plus
the scoring script's folder and schema), built like a job's, and start the scoring server with the script."""

from __future__ import annotations

from mlspec.backends.pulumi.kubernetes.program import images
from mlspec.backends.pulumi.manifests import ManifestSettings
from mlspec.backends.pulumi.manifests import images as manifest_images
from tests.kubernetes.conftest import REGISTRY, compiled, program_of

FILES = "/opt/mlspec-job/files"


def test_the_replicas_run_the_scoring_image_with_the_script() -> None:
    objects = compiled("iris-scoring", pinned=True).objects
    deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "iris-scored-blue")
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    assert server["image"].startswith(f"{REGISTRY}/iris-scoring-scoring-iris-scored-blue@sha256:")
    command = server["command"]
    start = command.index("--code")
    assert command[start:start + 6] == ["--code", f"{FILES}/score", "--scoring-script", "score.py",
                                        "--input-schema", f"{FILES}/score/schema.json"]


def test_the_scoring_image_is_built_on_the_environment_with_the_scripts_files() -> None:
    program = program_of("iris-scoring")
    (scoring,) = [i for i in images(program) if i["key"] == "scoring_iris_scored_blue"]
    assert scoring["kind"] == "job" and scoring["base"] == "env_sklearn"
    assert scoring["dockerfile"] == "docker/scoring-iris-scored-blue/Dockerfile"
    assert sorted(scoring["files"]) == ["score/schema.json", "score/score.py"]
    listed = {i.key: i.folder for i in manifest_images(program, ManifestSettings(REGISTRY))}
    assert listed["scoring_iris_scored_blue"] == "scoring-iris-scored-blue"
    assert "docker/scoring-iris-scored-blue/Dockerfile" in compiled("iris-scoring", pinned=False).files

"""The Docker program of a batch endpoint under Pulumi's mocks: one scoring container per run, declared with every
setting of the spec, named by what it scores, and failing the update with the scorer's last lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from mlspec.backends.pulumi.model import build_program
from mlspec.graph import load_graph
from mlspec.runtime.batch.contract import BatchResult, result_line
from tests.pulumi.batch_spec import SPEC, batch_spec, compile_batch
from tests.pulumi.conftest import CONTAINER, RegistryMocks, mock_digest
from tests.pulumi.harness import Captured, CapturedResource, container_file, container_files, run_program

IMAGE = "docker:index/image:Image"


class ScoringMocks(RegistryMocks):
    """Registry mocks whose batch containers exit with `exit_code` and print the scorer's result line."""

    def __init__(self, batch_exit: int = 0, rows: int = 150, failed: int = 0) -> None:
        super().__init__()
        self.batch_exit, self.rows, self.failed = batch_exit, rows, failed

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        id_, state = super().new_resource(args)
        if args.typ == CONTAINER and {"label": "mlspec.role", "value": "batch"} in args.inputs.get("labels", []):
            run = container_file(args.inputs)
            ok = self.batch_exit == 0
            result = BatchResult(status="succeeded" if ok else "failed", endpoint=run["endpoint"],
                                 model_uri=run["model_uri"], rows_scored=self.rows, rows_failed=self.failed,
                                 outputs=[f"{run['output']}/predictions.csv"] if ok else [],
                                 error=None if ok else "12 rows failed, more than the error threshold (0)")
            state["exitCode"] = self.batch_exit
            state["containerLogs"] = "\n".join(["[nightly] scored 15 mini-batch(es)", result_line(result)])
        return id_, state


def _batch(captured: Captured) -> CapturedResource:
    return captured.get(CONTAINER, "nightly")


def _contract(container: CapturedResource) -> dict[str, Any]:
    files = container_files(container.inputs)
    assert list(files) == ["/tmp/mlspec/batchrun.json"]
    return json.loads(files["/tmp/mlspec/batchrun.json"])  # type: ignore[no-any-return]


def test_the_run_is_declared_with_every_setting_of_the_spec(tmp_path: Path) -> None:
    captured = run_program(compile_batch(tmp_path), {}, mocks=ScoringMocks())
    batch = _batch(captured)
    run = _contract(batch)
    name = batch.inputs["name"]
    run_hash = next(item["value"] for item in batch.inputs["labels"] if item["label"] == "mlspec.hash")
    assert name == f"iris-batch-batch-nightly-{run_hash[:12]}"
    folder = f"/mlspec/batch/nightly/{run_hash}"
    # The scorer's contract: the version the job registered with the digest it registered it with, the data baked
    # into the image, the output on the workspace volume, and every setting as the spec declares it.
    assert run == {"endpoint": "nightly", "model_uri": "models:/iris-clf/1", "tracking_uri": "http://mlflow:5000",
                   "sha256": mock_digest("iris-clf", container_file(
                       captured.get(CONTAINER, "train").inputs)["content_hash"]),
                   "input": "/opt/mlspec-job/files/data/flowers.csv", "output": f"{folder}/scores", "mode": "append",
                   "mini_batch_size": 10, "error_threshold": 0, "max_retries": 1, "timeout": 20.0,
                   "max_concurrency": 2, "nodes": 1, "device": "auto"}
    assert batch.inputs["command"] == ["python", "-m", "mlspec.runtime.envfiles", "python", "-m",
                                       "mlspec.runtime.batch", "/tmp/mlspec/batchrun.json",
                                       "--result", f"{folder}/result.json", "--result-line"]
    assert batch.inputs["volumes"] == [{"containerPath": "/mlspec", "volumeName": "iris-batch-storage",
                                        "readOnly": False}]
    assert [n["name"] for n in batch.inputs["networksAdvanced"]] == ["iris-batch"]
    assert (batch.inputs["attach"], batch.inputs["mustRun"], batch.inputs["restart"]) == (True, False, "no")
    assert (batch.inputs["cpuShares"], batch.inputs["memory"], batch.inputs["user"]) == (1024, 2048, "mlspec")
    assert {"label": "mlspec.tag.team", "value": "flowers"} in batch.inputs["labels"]
    # It runs after the job that registers its model, on an image of the environment's plus the data.
    assert captured.get(CONTAINER, "train").urn in batch.dependencies
    image = captured.get(IMAGE, "nightly")
    assert batch.inputs["image"] == image.inputs["imageName"]
    assert image.inputs["build"]["args"]["ENVIRONMENT_IMAGE"] == captured.get(IMAGE, "sklearn").inputs["imageName"]
    staged = tmp_path / "stacks" / "iris-batch" / image.inputs["build"]["context"] / "files"
    assert [p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()] == ["data/flowers.csv"]
    # What a user needs from the run, as stack outputs.
    assert captured.exports["nightly.output"] == {"volume": "iris-batch-storage", "folder": f"{folder}/scores",
                                                  "files": [f"{folder}/scores/predictions.csv"]}
    assert (captured.exports["nightly.rows_scored"], captured.exports["nightly.rows_failed"]) == (150, 0)


def test_a_failed_run_fails_the_update_with_the_scorers_last_lines(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"(?s)batch endpoint 'nightly': 12 rows failed, more than the error "
                                        r"threshold \(0\); last lines of its log:.*scored 15 mini-batch"):
        run_program(compile_batch(tmp_path), {}, mocks=ScoringMocks(batch_exit=1))


def _changed_run(tmp_path: Path, registry: ScoringMocks, spec: str = SPEC, train_edit: str = "",
                 data_edit: str = "") -> CapturedResource:
    source = batch_spec(tmp_path / "examples" / "iris-batch", spec)
    if train_edit:
        (source / "src" / "train.py").write_text((source / "src" / "train.py").read_text() + train_edit)
    if data_edit:
        (source / "data" / "flowers.csv").write_text((source / "data" / "flowers.csv").read_text() + data_edit)
    from mlspec.backends.pulumi import compile_project

    out = tmp_path / "stacks" / "iris-batch"
    compile_project(load_graph([source]), out)
    return _batch(run_program(out, {}, mocks=registry))


def test_a_run_is_the_same_container_until_its_model_data_or_settings_change(tmp_path: Path) -> None:
    registry = ScoringMocks()  # one registry across the runs, as MLflow's would be
    first = _changed_run(tmp_path / "a", registry)
    again = _changed_run(tmp_path / "b", registry)
    # An unchanged program declares the very same container: Pulumi has nothing to do, the run is not repeated.
    assert json.dumps(again.inputs, sort_keys=True) == json.dumps(first.inputs, sort_keys=True)

    retrained = _changed_run(tmp_path / "c", registry, train_edit="\n# retrained\n")
    assert _contract(retrained)["model_uri"] == "models:/iris-clf/2"
    more_data = _changed_run(tmp_path / "d", registry, data_edit="5.0,3.4,1.5,0.2\n")
    resized = _changed_run(tmp_path / "e", registry, spec=SPEC.replace("mini_batch_size: 10", "mini_batch_size: 20"))
    names = [run.inputs["name"] for run in (first, retrained, more_data, resized)]
    folders = [_contract(run)["output"] for run in (first, retrained, more_data, resized)]
    assert len(set(names)) == 4 and len(set(folders)) == 4  # each change is a new run, in a folder of its own


def test_pinned_versions_aliases_and_cluster_nodes_reach_the_run(tmp_path: Path) -> None:
    pinned = SPEC.replace("model: iris-clf\n", "model: iris-clf:3\n").replace("max_nodes: 1", "max_nodes: 3")
    batch = _changed_run(tmp_path / "pinned", ScoringMocks(), spec=pinned)
    run = _contract(batch)
    assert (run["model_uri"], run["sha256"], run["nodes"]) == ("models:/iris-clf/3", None, 3)
    # One container scores for the cluster's three nodes, with their cores and memory together.
    assert (batch.inputs["cpuShares"], batch.inputs["memory"]) == (3 * 1024, 3 * 2048)
    assert not any("train" in urn for urn in batch.dependencies)  # a pinned version waits for no job

    aliased = SPEC.replace("model: iris-clf\n", "model: iris-clf@champion\n")
    assert _contract(_changed_run(tmp_path / "alias", ScoringMocks(), spec=aliased))["model_uri"] == \
        "models:/iris-clf@champion"


def test_the_docker_program_compiles_batch_endpoints_instead_of_skipping_them(tmp_path: Path) -> None:
    source = batch_spec(tmp_path / "spec")
    program = build_program(load_graph([source]), tmp_path / "out")
    assert program.skipped == ()
    (batch,) = program.batches
    assert (batch.model_name, batch.version, batch.alias, batch.job, batch.nodes) == (
        "iris-clf", None, None, "job_train", 1)
    main = (compile_batch(tmp_path / "compiled") / "__main__.py").read_text()
    assert "BatchEndpoint(\"nightly\", workspace" in main and "Not compiled" not in main

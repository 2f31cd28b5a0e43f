"""A batch endpoint on a real Docker engine: the compiled program trains a model and scores the iris data with it in
a run-to-completion container; the predictions on the workspace volume are the model's own; a run killed part-way
resumes from its journal when its container is created again; and an unchanged program declares the same run.
The same workspace runs a job of two nodes (a container each, at once, on its network)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import docker
import pulumi
import pytest

from mlspec.runtime.batch.contract import result_from_logs
from tests.docker import nodes_job
from tests.docker.engine import Created, DockerEngine
from tests.docker.test_iris_docker_e2e import assert_runs_as_declared, report
from tests.pulumi.batch_spec import SPEC, compile_batch
from tests.pulumi.harness import Captured, container_file, run_program

CONTAINER = "docker:index/container:Container"
KEEP = 5  # mini-batches the killed run journals before it dies (of 15: 150 rows, 10 a mini-batch)

# The images (runtime, environment, job, batch) dominate: a few minutes here, more on a busy machine.
pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.timeout(1800)]

# In the run's image, on the workspace network: the model's own predictions (MLflow's loader, not mlspec's) on
# the data, beside the predictions the run wrote.
COMPARE = """\
import json, sys
import mlflow.pyfunc, pandas
data = pandas.read_csv("/opt/mlspec-job/files/data/flowers.csv")
model = mlflow.pyfunc.load_model(sys.argv[1])
scored = pandas.read_csv(sys.argv[2] + "/predictions.csv")
columns = [c for c in scored.columns if c not in ("source", "row")]
print(json.dumps({"expected": [int(v) for v in model.predict(data)],
                  "scored": [int(v) for v in scored[columns[0]]], "rows": scored["row"].tolist(),
                  "columns": columns}))
"""

# The scorer itself, killed (SIGKILL) right after it journals its KEEP-th mini-batch: what a killed container
# leaves on the volume. The earlier run's predictions are removed first, so what the resumed run leaves is its own.
KILLED = f"""\
import os, shutil, signal, sys
from pathlib import Path
from mlspec.runtime.batch import journal
from mlspec.runtime.batch.contract import BatchRun
run = BatchRun.model_validate_json(os.environ["BATCHRUN"])
shutil.rmtree(run.output, ignore_errors=True)
Path("/tmp/batchrun.json").write_text(os.environ["BATCHRUN"])
record = journal.Journal.record_many
def record_then_die(self, entries):
    record(self, entries[:max(0, {KEEP} - len(self.entries))])
    if len(self.entries) >= {KEEP}:
        os.kill(os.getpid(), signal.SIGKILL)
journal.Journal.record_many = record_then_die
from mlspec.runtime.batch.__main__ import main
sys.exit(main(["/tmp/batchrun.json"]))
"""


class Replay(pulumi.runtime.Mocks):
    """Pulumi's view of a stack after an `up`: each resource's state as the engine left it, nothing performed."""

    def __init__(self, created: list[Created]) -> None:
        self.state = {(c.typ, c.name): (c.id, c.state) for c in created}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if not args.custom or args.typ.startswith("pulumi:providers:"):
            return f"{args.name}-id", dict(args.inputs)
        return self.state[(args.typ, args.name)]

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        return {}


def _one_off(engine: DockerEngine, image: str, command: list[str], network: str, volume: str,
             env: dict[str, str] | None = None) -> tuple[int, str]:
    """A container of `image` on the workspace network with its volume, run to completion; (exit code, logs)."""
    container = engine.client.containers.create(
        image, command, user="mlspec", network=network, volumes={volume: {"bind": "/mlspec", "mode": "rw"}},
        environment=env or {}, labels=engine.labels)
    try:
        container.start()
        exit_code = int(container.wait(timeout=600)["StatusCode"])
        return exit_code, container.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)


def _compare(engine: DockerEngine, batch: dict[str, Any], folder: str) -> dict[str, Any]:
    run = container_file(batch)
    exit_code, logs = _one_off(engine, batch["image"], ["python", "-c", COMPARE, run["model_uri"], folder],
                               batch["networksAdvanced"][0]["name"], batch["volumes"][0]["volumeName"],
                               {"MLFLOW_TRACKING_URI": run["tracking_uri"]})
    assert exit_code == 0, logs
    found: dict[str, Any] = json.loads(logs.strip().splitlines()[-1])
    return found


def test_batch_endpoint_scores_resumes_after_a_kill_and_is_not_rerun_unchanged(
        docker_engine: DockerEngine, base_image: str, wheelhouse: Path, tmp_path: Path,
        pytestconfig: pytest.Config, record_property: Any) -> None:
    started = time.monotonic()
    project = compile_batch(tmp_path, SPEC + nodes_job.SPEC)
    config = {"mlspec:baseImage": base_image, "mlspec:wheelhouse": str(wheelhouse)}
    captured: Captured = run_program(project, config, mocks=docker_engine)
    provisioned_s = time.monotonic() - started
    assert not docker_engine.errors
    client: docker.DockerClient = docker_engine.client

    # The run scored every row once, as declared, and says where its predictions are.
    batch = captured.get(CONTAINER, "nightly")
    assert_runs_as_declared(client, batch)
    assert batch.outputs["exitCode"] == 0, batch.outputs.get("containerLogs")
    assert (captured.exports["nightly.rows_scored"], captured.exports["nightly.rows_failed"]) == (150, 0)
    output = captured.exports["nightly.output"]
    run_hash = next(item["value"] for item in batch.inputs["labels"] if item["label"] == "mlspec.hash")
    assert output["volume"] == "iris-batch-storage"
    assert output["folder"] == f"/mlspec/batch/nightly/{run_hash}/scores"
    assert output["files"] == [f"{output['folder']}/predictions.csv"]

    nodes_job.assert_nodes_ran_together(client, captured)

    # The predictions on the volume are the registered model's own, row for row.
    first = _compare(docker_engine, batch.inputs, output["folder"])
    assert first["rows"] == list(range(150)) and len(first["columns"]) == 1
    assert first["scored"] == first["expected"]

    # A run killed part-way: its journal and partial predictions stay on the volume, no predictions file.
    # (Under a shell: the container's first process ignores a SIGKILL sent from inside the container.)
    killed_code, killed_logs = _one_off(
        docker_engine, batch.inputs["image"], ["sh", "-c", 'python -c "$KILLED"; exit $?'],
        batch.inputs["networksAdvanced"][0]["name"], output["volume"],
        {"BATCHRUN": json.dumps(container_file(batch.inputs)), "KILLED": KILLED})
    assert killed_code == 137, killed_logs

    # Its container created again, exactly as declared (what `pulumi up --replace` does), resumes: the mini-batches
    # the killed run journalled are not scored again, and the predictions are still the model's own.
    rerun_started = time.monotonic()
    _, rerun = docker_engine.new_resource(pulumi.runtime.MockResourceArgs(
        typ=CONTAINER, name="nightly", inputs=batch.inputs, custom=True))
    rerun_s = time.monotonic() - rerun_started
    assert rerun["exitCode"] == 0, rerun["containerLogs"]
    result = result_from_logs(rerun["containerLogs"])
    assert result is not None and result.status == "succeeded"
    assert (result.resumed_batches, result.rows_scored, result.batches) == (KEEP, 150, 15)
    assert f"resuming: {KEEP} mini-batch(es)" in rerun["containerLogs"]
    assert _compare(docker_engine, batch.inputs, output["folder"])["scored"] == first["expected"]

    # Run again unchanged (the job's container, with its logs, as the engine left it), the program declares the
    # very same scoring container: Pulumi finds no difference and does not run it again.
    replayed = run_program(project, config, mocks=Replay(docker_engine.created)).get(CONTAINER, "nightly")
    assert json.dumps(replayed.inputs, sort_keys=True) == json.dumps(batch.inputs, sort_keys=True)

    total_s = time.monotonic() - started
    record_property("provision_seconds", round(provisioned_s, 1))
    slowest = sorted(docker_engine.created, key=lambda c: -c.seconds)[:5]
    report(pytestconfig, [
        f"batch endpoint on Docker: provisioned in {provisioned_s:.0f} s, resumed run {rerun_s:.0f} s, "
        f"test {total_s:.0f} s",
        *[f"  {c.typ.split(':')[-1]} {c.name}: {c.seconds:.1f} s" for c in slowest],
    ])

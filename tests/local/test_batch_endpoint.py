"""A batch endpoint on the local engine: `up` trains and scores, a second `up` does nothing, new data re-scores."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.local.conftest import EXAMPLES, mlspec, status

pytestmark = pytest.mark.e2e

SPEC = """\
kind: Workspace
name: batch-demo
---
kind: Data
name: iris
path: data/iris.csv
---
kind: Data
name: to-score
path: scoring/
---
kind: Job
name: train
code: src/
command: {python} train.py --data ${{{{inputs.data}}}} --algo logistic --model-dir ${{{{outputs.model}}}}
inputs: {{data: data:iris}}
outputs: {{model: {{type: model, register_as: iris-clf, flavor: sklearn}}}}
---
kind: Endpoint
name: nightly
type: batch
model: iris-clf@latest
input: data:to-score
output: {{path: predictions, mode: per_file}}
mini_batch_size: 40
max_concurrency: 2
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "batch"
    shutil.copytree(EXAMPLES / "iris" / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(EXAMPLES / "iris" / "data", root / "data")
    (root / "mlspec.yaml").write_text(SPEC.format(python=sys.executable))
    lines = (root / "data" / "iris.csv").read_text().splitlines()
    features = [",".join(line.split(",")[:4]) for line in lines]  # what is scored has no label column
    (root / "scoring").mkdir()
    (root / "scoring" / "first.csv").write_text("\n".join(features[:101]) + "\n")
    (root / "scoring" / "second.csv").write_text("\n".join([features[0], *features[101:]]) + "\n")
    yield root
    mlspec("down", str(root), "--yes", check=False)


def predictions(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_up_scores_is_a_no_op_the_second_time_and_rescores_new_data(project: Path) -> None:
    plan = mlspec("plan", str(project))
    assert "score data:to-score with iris-clf@latest" in plan.stdout
    mlspec("up", str(project), "--yes")
    outputs = status(project)["resources"]["endpoint/nightly"]["outputs"]
    assert (outputs["rows_scored"], outputs["rows_failed"], outputs["version"]) == (150, 0, 1)
    assert outputs["output"] == str((project / "predictions").resolve())
    first = predictions(project / "predictions" / "first.csv")
    assert len(first) == 100 and first[0]["source"] == "first.csv" and first[0]["row"] == "0"
    assert first[0]["prediction"] == "0"  # a setosa
    assert predictions(project / "predictions" / "second.csv")[-1]["prediction"] == "2"  # a virginica

    assert "No changes" in mlspec("up", str(project), "--yes").stdout

    with (project / "scoring" / "second.csv").open("a") as handle:
        handle.write("5.1,3.5,1.4,0.2\n")
    changes = {c["id"]: c for c in json.loads(mlspec("plan", str(project), "--json").stdout)["changes"]
               if c["action"] != "noop"}
    assert set(changes) == {"data/to-score", "endpoint/nightly"}  # the model is not retrained
    again = mlspec("up", str(project), "--yes")
    assert "scoring data:to-score with iris-clf version 1" in again.stdout
    assert status(project)["resources"]["endpoint/nightly"]["outputs"]["rows_scored"] == 151
    assert predictions(project / "predictions" / "second.csv")[-1] == {"source": "second.csv", "row": "50",
                                                                       "prediction": "0"}

    mlspec("down", str(project), "--yes")
    assert (project / "predictions" / "first.csv").exists()  # predictions are kept
    assert not (project / ".mlspec" / "batch" / "nightly").exists()
    mlspec("up", str(project), "--yes")
    mlspec("down", str(project), "--yes", "--purge")
    assert not (project / "predictions").exists()


def test_status_shows_what_was_scored_and_logs_show_and_follow_the_run(project: Path) -> None:
    import contextlib
    import os
    import queue
    import subprocess
    import threading
    import time

    mlspec("up", str(project), "--yes")
    output = (project / "predictions").resolve()
    text = mlspec("status", str(project)).stdout
    line = next(line for line in text.splitlines() if line.startswith("endpoint/nightly"))
    assert f"150 rows scored, 0 failed, into {output}" in line and "iris-clf v1" in line

    log = (project / ".mlspec" / "batch" / "nightly" / "batch.log").resolve()
    shown = mlspec("logs", "nightly", str(project)).stdout
    assert shown.splitlines()[0] == f"==> {log} <=="
    assert "[nightly] done: 150 rows scored, 0 failed" in shown
    assert mlspec("logs", "nightly", str(project), "-n", "1").stdout.count("\n") == 2  # the name, one line

    follow = subprocess.Popen([sys.executable, "-m", "mlspec.cli.main", "logs", "nightly", str(project), "-f"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in follow.stdout or ()], daemon=True).start()

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                if text in lines.get(timeout=1):
                    return
        raise AssertionError(f"`mlspec logs -f` never printed {text!r}")

    try:
        wait_for("done: 150 rows scored")
        with log.open("a") as handle:
            handle.write("[nightly] a line written while following\n")
        wait_for("written while following")
        assert follow.poll() is None  # still following
    finally:
        follow.kill()
        follow.wait(10)

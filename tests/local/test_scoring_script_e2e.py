"""examples/iris-scoring on the local engine: the scoring script answers through the gateway, its schema refuses a
bad request with a 422 naming the field, run()'s exception is a 500, an edited script redeploys, and an init() that
raises fails `up` with its error."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.local.conftest import EXAMPLES, mlspec, status
from tests.local.test_iris_e2e import post

pytestmark = pytest.mark.e2e


@pytest.fixture
def example(tmp_path: Path) -> Iterator[Path]:
    """The example without its Environment (the current interpreter has what it lists), so it starts faster."""
    target = tmp_path / "iris-scoring"
    shutil.copytree(EXAMPLES / "iris-scoring", target, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    spec = target / "mlspec.yaml"
    documents = spec.read_text().split("\n---\n")
    kept = [d for d in documents if "kind: Environment" not in d]
    spec.write_text("\n---\n".join(kept).replace("defaults:\n  environment: sklearn\n", ""))
    yield target
    mlspec("down", str(target), "--yes", check=False)


def invoke(example: Path, body: object) -> tuple[int, dict[str, object]]:
    endpoint = status(example)["resources"]["endpoint/iris-scored"]["outputs"]
    keys = json.loads(Path(endpoint["keys_file"]).read_text())
    key = next(iter(keys.values()))
    code, answer = post(f"{endpoint['url']}/score", json.dumps(body).encode(),
                        {"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    return code, json.loads(answer)


def test_scoring_script_behind_its_schema_end_to_end(example: Path) -> None:
    mlspec("up", str(example), "--yes")
    invoked = mlspec("endpoint", "invoke", "iris-scored", "--data", str(example / "request.json"), str(example))
    answer = json.loads(invoked.stdout)
    assert answer["predictions"] == [0, 2]  # a setosa and a virginica
    assert len(answer["probabilities"]) == 2 and all(abs(sum(p) - 1) < 1e-3 for p in answer["probabilities"])

    code, refused = invoke(example, {"data": [[5.1, 3.5, "wide", 0.2]]})
    assert code == 422 and refused["error"].startswith("$.data[0][2]: 'wide' is not of type 'number'")
    code, refused = invoke(example, {"rows": [[5.1, 3.5, 1.4, 0.2]]})
    assert code == 422 and "'data' is a required property" in str(refused["error"])
    # Three values pass no schema check here once the schema allows them: run() then fails on them, a 500.
    schema = example / "score" / "schema.json"
    schema.write_text(schema.read_text().replace('"minItems": 4', '"minItems": 3'))
    script = example / "score" / "score.py"
    script.write_text(script.read_text().replace('.round(4)', '.round(2)'))
    plan = json.loads(mlspec("plan", str(example), "--json").stdout)
    changes = {c["id"]: c for c in plan["changes"] if c["action"] != "noop"}
    assert list(changes) == ["endpoint/iris-scored"], changes
    reasons = " ".join(changes["endpoint/iris-scored"]["reasons"])
    assert "score/schema.json" in reasons and "score/score.py" in reasons
    redeployed = mlspec("up", str(example), "--yes")
    assert "starting 1 replica(s) of iris-scored/blue" in redeployed.stdout
    code, failed = invoke(example, {"data": [[5.1, 3.5, 1.4]]})
    assert code == 500 and str(failed["error"]).startswith("run() failed: ValueError:"), failed
    code, answer = invoke(example, {"data": [[6.7, 3.0, 5.2, 2.3]]})
    assert code == 200 and answer["probabilities"] == [[0.0, 0.09, 0.91]]  # the edited script answers
    assert "No changes" in mlspec("up", str(example), "--yes").stdout
    # An init() that raises: the new replica never becomes ready and `up` says why, from its log.
    script.write_text(script.read_text().replace("    model = mlflow.sklearn.load_model(",
                                                 "    raise RuntimeError('no weights')\n    model = (", 1))
    failed_up = mlspec("up", str(example), "--yes", check=False)
    assert failed_up.returncode != 0
    assert "init() failed: RuntimeError: no weights" in failed_up.stdout + failed_up.stderr


BATCH_SCRIPT = '''
import os

import mlflow.sklearn

model = None


def init():
    global model
    model = mlflow.sklearn.load_model(os.environ["AZUREML_MODEL_DIR"])


def run(mini_batch):
    rows = mini_batch[["sepal_length", "sepal_width", "petal_length", "petal_width"]].to_numpy()
    return [{"label": int(p), "top": float(max(q))} for p, q in zip(model.predict(rows), model.predict_proba(rows))]
'''

BATCH = """
---
kind: Endpoint
name: nightly
type: batch
model: iris-clf
input: data:iris
output: {path: scores}
mini_batch_size: 50
code_configuration: {code: score/, scoring_script: batch.py}
"""


def test_a_batch_endpoint_scores_through_its_script(example: Path) -> None:
    """The local engine hands the batch scorer the script: its rows are the predictions written."""
    (example / "score" / "batch.py").write_text(BATCH_SCRIPT)
    spec = example / "mlspec.yaml"
    documents = spec.read_text().split("\n---\n")
    spec.write_text("\n---\n".join(d for d in documents if "kind: Endpoint" not in d) + BATCH)
    mlspec("up", str(example), "--yes")
    with (example / "scores" / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 150 and list(rows[0]) == ["source", "row", "label", "top"]
    assert [int(r["label"]) for r in rows[:50]] == [0] * 50 and all(0.3 < float(r["top"]) <= 1 for r in rows)

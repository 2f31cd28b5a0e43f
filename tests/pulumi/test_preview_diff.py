"""An offline preview of a code change: run the program for a spec and for a copy with `src/train.py` edited,
and compare what each registers. Exactly the job's image and container, its model version and the replicas
that serve it change; the gateway, MLflow and the environment do not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.pulumi.conftest import CONTAINER, RegistryMocks, compile_copy
from tests.pulumi.harness import Captured, run_program


def _edit_train(spec: Path) -> None:
    train = spec / "src" / "train.py"
    train.write_text(train.read_text() + "\n# tuned: a comment is enough to change the code's digest\n")


def _state(captured: Captured) -> dict[tuple[str, str], Any]:
    """What `pulumi preview` compares: each resource's inputs (the staged build folder aside) and parent."""
    state = {}
    for r in captured.resources:
        state[r.key] = json.dumps({"inputs": r.inputs, "parent": r.parent}, sort_keys=True)
    return state


def _changed(before: Captured, after: Captured) -> set[tuple[str, str]]:
    old, new = _state(before), _state(after)
    assert set(old) == set(new), "the same resources exist before and after"
    return {key for key in old if old[key] != new[key]}


def test_editing_train_py_retrains_one_job_and_redeploys_what_serves_its_model(tmp_path: Path) -> None:
    registry = RegistryMocks()  # one registry across both runs, as MLflow's would be
    before = run_program(compile_copy(tmp_path / "before", "iris"), {}, mocks=registry)
    after = run_program(compile_copy(tmp_path / "after", "iris", _edit_train), {}, mocks=registry)

    # Both jobs run train.py, so both retrain; each registers a new version of its own model.
    assert _changed(before, after) == {
        ("docker:index/image:Image", "train"), (CONTAINER, "train"),
        ("docker:index/image:Image", "train-forest"), (CONTAINER, "train-forest"),
        (CONTAINER, "iris-blue-0"), (CONTAINER, "iris-green-0"),
    }
    assert before.exports["train.models"] == {"iris-clf": 1} and after.exports["train.models"] == {"iris-clf": 2}
    blue = after.get(CONTAINER, "iris-blue-0").inputs["command"]
    assert blue[blue.index("--model-uri") + 1] == "models:/iris-clf/2"
    old_name = before.get(CONTAINER, "train").inputs["name"]
    assert after.get(CONTAINER, "train").inputs["name"] != old_name  # a new run-to-completion container


def test_a_change_to_one_job_leaves_the_other_deployment_alone(tmp_path: Path) -> None:
    def edit_forest(spec: Path) -> None:
        text = (spec / "mlspec.yaml").read_text()
        (spec / "mlspec.yaml").write_text(text.replace("--algo forest", "--algo forest --seed 7"))

    registry = RegistryMocks()
    before = run_program(compile_copy(tmp_path / "before", "iris"), {}, mocks=registry)
    after = run_program(compile_copy(tmp_path / "after", "iris", edit_forest), {}, mocks=registry)
    assert _changed(before, after) == {("docker:index/image:Image", "train-forest"), (CONTAINER, "train-forest"),
                                       (CONTAINER, "iris-green-0")}
    assert after.exports["train-forest.models"] == {"iris-forest": 2}
    assert after.exports["train.models"] == {"iris-clf": 1}
    unchanged = {"iris-gateway", "iris-demo-mlflow", "iris-blue-0"}
    assert all(before.get(CONTAINER, n).inputs == after.get(CONTAINER, n).inputs for n in unchanged)
    assert before.get("docker:index/image:Image", "sklearn").inputs == \
        after.get("docker:index/image:Image", "sklearn").inputs

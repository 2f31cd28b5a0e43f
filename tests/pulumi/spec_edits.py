"""Two copies of examples/iris, the second edited as a branch would edit it: the base and head of a change."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from mlspec.graph import Graph, load_graph

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "iris"
TRAFFIC = "traffic: {blue: 90, green: 10}"
GREEN = "  green:\n    model: iris-forest@latest\n    instance_count: 1\n"
FOREST_JOB = """---
kind: Job
name: train-forest
code: src/
command: python train.py --data ${{inputs.data}} --algo forest --model-dir ${{outputs.model}}
inputs:
  data: data:iris
outputs:
  model: {type: model, register_as: iris-forest, flavor: sklearn}
experiment_name: iris
"""

Edit = Callable[[Path], None]


def base_and_head(tmp_path: Path, *edits: Edit) -> tuple[Graph, Graph]:
    """The graphs of examples/iris and of a copy with `edits` applied."""
    graphs = []
    for side, changes in (("base", ()), ("head", edits)):
        spec = tmp_path / side
        shutil.copytree(EXAMPLE, spec, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
        for edit in changes:
            edit(spec)
        graphs.append(load_graph([spec]))
    return graphs[0], graphs[1]


def replace(old: str, new: str) -> Edit:
    """An edit of mlspec.yaml: `old` (which must be there once) becomes `new`."""
    def edit(spec: Path) -> None:
        path = spec / "mlspec.yaml"
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} is not in the spec once"
        path.write_text(text.replace(old, new))
    return edit


def edit_train_py(spec: Path) -> None:
    """A comment is enough to change the code's digest: both jobs run src/train.py."""
    train = spec / "src" / "train.py"
    train.write_text(train.read_text() + "\n# tuned\n")


shift_traffic = replace(TRAFFIC, "traffic: {blue: 80, green: 20}")
add_deployment = replace(TRAFFIC, "  teal:\n    model: iris-clf:1\n    instance_count: 2\n" + TRAFFIC)
# The forest job goes, with the deployment serving its model: blue takes all the traffic.
remove_forest = [replace(FOREST_JOB, ""), replace(GREEN, ""), replace(TRAFFIC, "traffic: {blue: 100}")]
add_endpoint = replace(TRAFFIC, TRAFFIC + "\n---\nkind: Endpoint\nname: canary\ntype: online\ndeployments:\n"
                       "  only: {model: iris-clf@latest}\ntraffic: {only: 100}")
more_cpus = replace("resources: {cpus: 1, memory: 2Gi}", "resources: {cpus: 2, memory: 2Gi}")
more_requirements = replace("  - mlflow-skinny>=2.12\n", "  - mlflow-skinny>=2.12\n  - pandas>=2\n")

"""What this machine cannot give a spec is refused at plan time, at the line that asks for it, before anything runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mlspec.backends.local.capacity import check_local_capacity, node_limits
from mlspec.graph import load_graph
from mlspec.runtime.limits import local_gpus
from mlspec.spec.compute import Resources
from tests.local.conftest import mlspec

HERE = f"{sys.version_info[0]}.{sys.version_info[1]}"
OTHER = f"3.{sys.version_info[1] + 1}"

SPEC = """\
kind: Workspace
name: capacity
---
kind: Compute
name: gpu
type: cluster
resources:
  cpus: 2
  gpus: {gpus}
---
kind: Environment
name: py
python: "{python}"
---
kind: Job
name: train
compute: gpu
environment: py
command: echo hi
resources:
  instance_count: {nodes}
"""


def _spec(tmp_path: Path, gpus: int = 0, python: str = HERE, nodes: int = 1) -> Path:
    spec = tmp_path / "spec"
    spec.mkdir(exist_ok=True)
    (spec / "mlspec.yaml").write_text(SPEC.format(gpus=gpus, python=python, nodes=nodes))
    return spec


def _check(spec: Path, gpus: list[str], python: tuple[int, int] = sys.version_info[:2]) -> list[tuple[str, int]]:
    found = check_local_capacity(load_graph([spec]).spec, gpus=gpus, python=python)
    return [(d.path, d.span.line if d.span else 0) for d in found]


def test_only_the_limits_a_spec_writes_out_are_enforced() -> None:
    assert node_limits(Resources()) == {}  # the defaults (1 CPU, 2Gi) size docker and kubernetes nodes only
    assert node_limits(Resources.model_validate({"memory": "256Mi", "gpus": 0})) == {"memory": 2**28}


def test_more_gpus_than_this_machine_has_is_refused_at_the_gpus_line(tmp_path: Path) -> None:
    spec = _spec(tmp_path, gpus=2)
    assert _check(spec, gpus=["0"]) == [("resources.gpus", 9)]
    assert _check(spec, gpus=["0", "1"]) == []


def test_nodes_that_together_need_more_gpus_are_refused_at_instance_count(tmp_path: Path) -> None:
    spec = _spec(tmp_path, gpus=1, nodes=2)
    assert _check(spec, gpus=["0"]) == [("resources.instance_count", 21)]
    assert _check(spec, gpus=["0", "1"]) == []


def test_another_python_than_mlspecs_is_refused_at_the_python_line(tmp_path: Path) -> None:
    assert _check(_spec(tmp_path, python=OTHER), gpus=[]) == [("python", 13)]
    assert _check(_spec(tmp_path, python=HERE), gpus=[]) == []


def test_an_environment_that_does_not_say_its_python_runs_on_mlspecs(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    (spec / "mlspec.yaml").write_text(SPEC.format(gpus=0, python=HERE, nodes=1).replace(f'python: "{HERE}"\n', ""))
    assert _check(spec, gpus=[], python=(3, 99)) == []


@pytest.mark.e2e
def test_plan_and_up_refuse_before_anything_runs(tmp_path: Path) -> None:
    if local_gpus():
        pytest.skip("this machine has GPUs: asking for one more than it has is covered by the unit tests")
    spec = _spec(tmp_path, gpus=1, python=OTHER)

    plan = mlspec("plan", str(spec), check=False)
    up = mlspec("up", str(spec), "--yes", check=False)
    as_json = mlspec("plan", str(spec), "--json", check=False)

    assert plan.returncode == up.returncode == as_json.returncode == 2
    for result in (plan, up):
        # The file as the command shows it: relative to its working directory when that is shorter.
        assert "mlspec.yaml:9:9: error: compute 'gpu' asks for 1 GPU(s) per node; this machine has 0" in result.stderr
        assert f"mlspec.yaml:13:9: error: environment 'py' asks for Python {OTHER}" in result.stderr
        assert "Traceback" not in result.stderr
    assert {d["path"] for d in json.loads(as_json.stdout)["diagnostics"]} == {"resources.gpus", "python"}
    assert not (spec / ".mlspec").exists()  # up created nothing

"""`--stack` on the command line: one spec selected onto local, docker and kubernetes by stack alone, the stack and
target said, the stack file's mistakes at their lines, and one local workspace folder per stack at a time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SPEC = """\
kind: Workspace
name: stacked
---
kind: Data
name: rows
path: rows.csv
"""

STACKS = """\
stacks:
  dev: {target: local}
  test: {target: local}
  staging:
    target: docker
    docker: {host: ssh://ml@staging.example.com}
"""


def _mlspec(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "MLSPEC_STACK"}
    environ.update({"PYTHONPATH": str(ROOT)}, **(env or {}))
    return subprocess.run([sys.executable, "-m", "mlspec.cli.main", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def iris(tmp_path: Path) -> Path:
    folder = tmp_path / "iris"
    shutil.copytree(ROOT / "examples" / "iris", folder, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    return folder


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """A spec whose `up` snapshots one data file and starts no process, with three stacks and no default."""
    (tmp_path / "rows.csv").write_text("x,y\n0,0\n1,1\n")
    (tmp_path / "mlspec.yaml").write_text(SPEC)
    (tmp_path / "mlspec.stacks.yaml").write_text(STACKS)
    return tmp_path


def test_the_same_spec_is_selected_onto_local_docker_and_kubernetes_by_stack_alone(iris: Path) -> None:
    dev, staging, prod = (_mlspec("validate", str(iris), "--stack", name) for name in ("dev", "staging", "prod"))
    assert (dev.returncode, dev.stdout) == (0, "valid: 8 resources in 1 file\n"), dev.stderr
    assert dev.stderr == ""  # a local check: the docker target's harmless warnings are not given
    assert staging.returncode == 0 and "has no effect on the docker target" in staging.stderr
    assert prod.returncode == 0 and "has no effect on the kubernetes target" in prod.stderr
    # The same by MLSPEC_STACK, and by the file's default when nothing names a stack.
    by_env = _mlspec("validate", str(iris), env={"MLSPEC_STACK": "prod"})
    assert by_env.returncode == 0 and "has no effect on the kubernetes target" in by_env.stderr
    stacks = iris / "mlspec.stacks.yaml"
    stacks.write_text("default: staging\n" + stacks.read_text())
    by_default = _mlspec("validate", str(iris))
    assert by_default.returncode == 0 and "has no effect on the docker target" in by_default.stderr


def test_commands_go_where_the_stack_says(iris: Path, tmp_path: Path) -> None:
    no_pulumi = tmp_path / "bin"
    no_pulumi.mkdir()
    docker = _mlspec("up", str(iris), "--stack", "staging", "--yes", env={"PATH": str(no_pulumi)})
    assert docker.returncode == 1 and "no `pulumi` command is on PATH" in docker.stderr  # the Pulumi back end
    kubernetes = _mlspec("up", str(iris), "--stack", "prod", "--yes", env={"PATH": str(no_pulumi)})
    assert kubernetes.returncode == 1
    assert "the kubernetes target runs Pulumi, and no `pulumi` command is on PATH" in kubernetes.stderr
    down = _mlspec("down", str(iris), "--stack", "prod", "--yes", env={"PATH": str(no_pulumi)})
    assert down.returncode == 1 and "no `pulumi` command" in down.stderr  # never the local workspace in its place
    cluster_status = _mlspec("status", str(iris), "--stack", "prod")
    assert cluster_status.returncode == 1 and "status on a kubernetes stack reads the cluster with kubectl" in \
        cluster_status.stderr  # the cluster's status, never the local workspace's
    status = _mlspec("status", str(iris), "--stack", "staging")  # the stack's Docker host, never the local workspace
    assert status.returncode == 1 and "the stack's Docker host (ssh://ml@staging.example.com)" in status.stderr
    assert not (iris / ".mlspec").exists(), "nothing of the local engine was written"


def test_status_and_plan_say_which_stack_and_target(iris: Path) -> None:
    without = _mlspec("plan", str(iris), "--json")  # no stack named, no default: as before stacks, nothing said
    assert without.returncode == 0 and without.stderr == ""
    stacks = iris / "mlspec.stacks.yaml"
    stacks.write_text("default: dev\n" + stacks.read_text())
    plan = _mlspec("plan", str(iris), "--json")
    assert plan.returncode == 0, plan.stderr
    assert "mlspec: stack 'dev' (from the default of" in plan.stderr and "): target local" in plan.stderr
    assert json.loads(plan.stdout)["changes"]  # standard output is the plan alone
    status = _mlspec("status", str(iris), "--stack", "dev")
    assert status.returncode == 0 and "mlspec: stack 'dev' (from --stack): target local\n" in status.stderr
    plain = _mlspec("status", str(iris), "--stack", "prod", "--target", "local")
    assert plain.returncode == 0
    assert "stack 'prod' (from --stack): target local, overriding the stack's target kubernetes with --target" \
        in plain.stderr


def test_stack_file_mistakes_are_shown_at_their_line(small: Path) -> None:
    (small / "mlspec.stacks.yaml").write_text("stacks:\n  dev:\n    target: local\n  staging:\n    targt: docker\n")
    result = _mlspec("validate", ".", "--stack", "dev", cwd=small)
    assert result.returncode == 2
    assert "mlspec.stacks.yaml:5:5: error: stack file has no field 'targt' in 'stacks.staging'" in result.stderr
    assert "did you mean 'target'?" in result.stderr and "Traceback" not in result.stderr
    as_json = json.loads(_mlspec("validate", ".", "--json", cwd=small).stdout)
    # One mistake, one diagnostic: the missing 'target' is the misspelt 'targt'.
    assert [(d["file"], d["line"], d["column"], d["hint"]) for d in as_json["diagnostics"]] == [
        ("mlspec.stacks.yaml", 5, 5, "did you mean 'target'?")]
    assert as_json["valid"] is False and as_json["files"] == ["mlspec.stacks.yaml"]


def test_one_local_workspace_holds_one_stack_at_a_time(small: Path, tmp_path: Path) -> None:
    def mlspec(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return _mlspec(*args, cwd=small, env=env)

    first = mlspec("up", "--stack", "dev", "--yes")
    assert first.returncode == 0, first.stderr
    assert first.stderr == "mlspec: stack 'dev' (from --stack): target local\n"
    assert (small / ".mlspec" / "stack").read_text() == "dev\n"
    state = (small / ".mlspec" / "state.db").read_bytes()

    # Another local stack, or no stack, on the same folder: refused before anything runs.
    for args, asked in ((("up", "--stack", "test", "--yes"), "stack 'test'"), (("up", "--yes"), "no stack"),
                        (("plan",), "no stack"), (("down", "--stack", "test", "--yes"), "stack 'test'")):
        refused = mlspec(*args)
        assert refused.returncode == 2, (args, refused.stderr)
        assert f"holds the deployment of stack 'dev', and this command is for {asked}" in refused.stderr
        assert "pass --stack dev, or remove it first with `mlspec down --stack dev`" in refused.stderr
    refused = mlspec("up", "--yes", MLSPEC_STACK="test")
    assert refused.returncode == 2 and "stack 'test'" in refused.stderr
    assert (small / ".mlspec" / "state.db").read_bytes() == state and (small / ".mlspec" / "stack").read_text() \
        == "dev\n"

    # A docker stack keeps its state apart (a Pulumi stack of its own name), so the local deployment is untouched.
    no_pulumi = tmp_path / "bin"
    no_pulumi.mkdir()
    docker = mlspec("up", "--stack", "staging", "--yes", PATH=str(no_pulumi))
    assert docker.returncode == 1 and "no `pulumi` command" in docker.stderr
    assert mlspec("status", "--stack", "dev").stdout.startswith("data/rows  ready")

    # Once dev is down, the folder is free for another stack.
    down = mlspec("down", "--stack", "dev", "--yes")
    assert down.returncode == 0, down.stderr
    assert not (small / ".mlspec" / "stack").exists()
    again = mlspec("up", "--stack", "test", "--yes")
    assert again.returncode == 0, again.stderr
    assert (small / ".mlspec" / "stack").read_text() == "test\n"


def test_a_deployment_made_without_a_stack_is_adopted_by_the_first_stack(small: Path) -> None:
    assert _mlspec("up", "--yes", cwd=small).returncode == 0
    assert not (small / ".mlspec" / "stack").exists()
    adopted = _mlspec("up", "--stack", "dev", "--yes", cwd=small)
    assert adopted.returncode == 0 and "No changes" in adopted.stdout, adopted.stdout + adopted.stderr
    assert (small / ".mlspec" / "stack").read_text() == "dev\n"
    assert _mlspec("status", cwd=small).returncode == 2  # from then on it is dev's


def test_a_kubernetes_stacks_expose_setting_reaches_the_manifests(iris: Path, tmp_path: Path) -> None:
    stacks = iris / "mlspec.stacks.yaml"
    stacks.write_text(stacks.read_text().replace("      namespace: iris\n",
                                                 "      namespace: iris\n      expose: load-balancer\n"))
    out = tmp_path / "manifests"
    done = _mlspec("compile", str(iris), "--stack", "prod", "--format", "manifests", "-o", str(out))
    assert done.returncode == 0, done.stderr
    types = {path.name: json.dumps(path.read_text()) for path in (out / "manifests").glob("*-service-*.yaml")}
    gateways = [name for name, text in types.items() if "LoadBalancer" in text]
    assert len(gateways) == 1 and gateways[0].endswith("-service-iris.yaml"), types  # endpoint iris's gateway
    stacks.write_text(stacks.read_text().replace("expose: load-balancer", "expose: node-port"))
    refused = _mlspec("compile", str(iris), "--stack", "prod", "--format", "manifests", "-o", str(out))
    assert refused.returncode == 2 and "expose" in refused.stderr

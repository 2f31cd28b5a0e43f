"""`mlspec init ci`: the workflow is valid for GitHub (its own schema), clean for zizmor, and covers each stack as its
target needs: an mlspec drift check for local stacks, Pulumi previews and a Pulumi drift check for the others."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlspec.diagnostics import SpecError
from mlspec.render.plan_markdown import MARKER as PLAN_MARKER
from mlspec.scaffold import WORKFLOW_PATH, ScaffoldError, write_workflow
from mlspec.scaffold.workflow import ACTIONS

TOOLS = Path(sys.executable).parent
SPEC = "kind: Workspace\nname: demo\n"
LOCAL_ONLY = "stacks:\n  dev:\n    target: local\n"
MIXED = """\
stacks:
  dev: {target: local}
  staging:
    target: docker
    docker: {host: "ssh://ml@staging.example.com"}
  prod:
    target: kubernetes
    kubernetes: {registry: registry.example.com/ml}
"""
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def _repository(root: Path, stacks: str | None, spec: str = ".") -> Path:
    folder = root / spec
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mlspec.yaml").write_text(SPEC)
    if stacks is not None:
        (folder / "mlspec.stacks.yaml").write_text(stacks)
    return root


@pytest.fixture(scope="module")
def workflows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The workflows of three repositories: no stack file, a local stack only, and local, docker and kubernetes
    stacks with the spec in a subfolder."""
    root = tmp_path_factory.mktemp("repos")
    made = {}
    for name, stacks, spec in (("plain", None, "."), ("local", LOCAL_ONLY, "."), ("mixed", MIXED, "ml")):
        repository = _repository(root / name, stacks, spec)
        write_workflow(repository, repository / spec)
        made[name] = repository / WORKFLOW_PATH
    return made


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    document["on"] = document.pop(True)  # PyYAML reads the key `on` as a boolean
    return document


def _steps(document: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return list(document["jobs"][job]["steps"])


def test_github_accepts_the_workflows(workflows: dict[str, Path]) -> None:
    check = shutil.which("check-jsonschema", path=str(TOOLS))
    assert check, "check-jsonschema is not installed (it is in the dev extra)"
    result = subprocess.run([check, "--builtin-schema", "vendor.github-workflows", *map(str, workflows.values())],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing(workflows: dict[str, Path]) -> None:
    zizmor = shutil.which("zizmor", path=str(TOOLS))
    assert zizmor, "zizmor is not installed (it is in the dev extra)"
    result = subprocess.run([zizmor, "--offline", "--no-config", "--no-ignores", "--format", "json",
                             *map(str, workflows.values())], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []


def test_security_settings(workflows: dict[str, Path]) -> None:
    for path in workflows.values():
        document = _load(path)
        assert document["permissions"] == {}
        assert document["concurrency"]["group"]
        for name, job in document["jobs"].items():
            writes = {scope for scope, level in job["permissions"].items() if level == "write"}
            assert writes == ({"pull-requests"} if name in ("plan", "pulumi-preview") else set()), name
            for step in job["steps"]:
                assert "${{" not in step.get("run", ""), f"{name}: an expression inside a script"
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False
        uses = re.findall(r"uses: (.*)$", path.read_text(), re.MULTILINE)
        assert uses and all(PINNED.match(line) for line in uses), uses
    assert {line.split("@")[0] for line in ACTIONS.values()} == {"actions/checkout", "actions/setup-python",
                                                                  "pulumi/actions"}


def test_every_script_is_valid_bash(workflows: dict[str, Path]) -> None:
    scripts = [step["run"] for path in workflows.values() for job in _load(path)["jobs"].values()
               for step in job["steps"] if "run" in step]
    for script in scripts:
        result = subprocess.run(["bash", "-n", "-e", "-o", "pipefail"], input=script, capture_output=True,
                                text=True, timeout=30)
        assert result.returncode == 0, script + result.stderr


def test_pull_requests_are_validated_and_planned_in_one_comment(workflows: dict[str, Path]) -> None:
    document = _load(workflows["mixed"])
    assert document["env"]["SPEC"] == "ml"
    assert document["jobs"]["plan"]["if"] == "github.event_name == 'pull_request'"
    steps = _steps(document, "plan")
    runs = "\n".join(step.get("run", "") for step in steps)
    assert 'mlspec validate "$SPEC"' in runs
    assert 'mlspec plan "$SPEC" --base "origin/$BASE_REF" --format markdown --detailed-exitcode' in runs
    assert PLAN_MARKER in runs and "--method PATCH" in runs and "issues/comments/$comment" in runs
    plan = next(step for step in steps if step.get("id") == "plan")
    assert plan["env"]["BASE_REF"] == "${{ github.base_ref }}"
    checkout = steps[0]
    assert checkout["with"]["fetch-depth"] == 0
    failing = steps[-1]
    assert '"$PLAN_EXIT" != 0 ] && [ "$PLAN_EXIT" != 2' in failing["run"], "changes alone must not fail the job"


def test_a_local_stack_gets_an_mlspec_drift_check_and_no_pulumi_jobs(workflows: dict[str, Path]) -> None:
    document = _load(workflows["local"])
    assert set(document["jobs"]) == {"plan", "drift"}
    drift = document["jobs"]["drift"]
    assert drift["if"] == "github.event_name != 'pull_request'"
    assert drift["strategy"]["matrix"]["stack"] == ["dev"]
    run = _steps(document, "drift")[-1]
    assert 'mlspec plan "$SPEC" --stack "$STACK" "${state[@]}" --detailed-exitcode' in run["run"]
    assert 'state=(--state "$MLSPEC_STATE")' in run["run"]
    assert run["env"]["MLSPEC_STATE"] == "${{ vars.MLSPEC_STATE }}"
    assert set(document["on"]) == {"pull_request", "push", "schedule", "workflow_dispatch"}
    assert document["on"]["push"]["branches"] == ["main"]
    plain = _load(workflows["plain"])
    assert set(plain["jobs"]) == {"plan", "drift"} and "strategy" not in plain["jobs"]["drift"]
    assert '--stack' not in _steps(plain, "drift")[-1]["run"]


def test_pulumi_stacks_are_previewed_and_checked_for_drift(workflows: dict[str, Path]) -> None:
    document = _load(workflows["mixed"])
    assert set(document["jobs"]) == {"plan", "pulumi-preview", "drift", "pulumi-drift"}
    assert document["jobs"]["drift"]["strategy"]["matrix"]["stack"] == ["dev"]
    for job, extra in (("pulumi-preview", {"comment-on-pr": True}), ("pulumi-drift", {"expect-no-changes": True})):
        assert document["jobs"][job]["strategy"]["matrix"]["stack"] == ["staging", "prod"]
        steps = _steps(document, job)
        assert steps[-2]["run"] == 'mlspec compile "$SPEC" --stack "$STACK" -o "$RUNNER_TEMP/pulumi/$STACK"'
        pulumi = steps[-1]
        assert pulumi["uses"].startswith("pulumi/actions@")
        assert pulumi["with"]["command"] == "preview"
        assert pulumi["with"]["stack-name"] == "${{ matrix.stack }}"
        assert pulumi["with"]["work-dir"] == "${{ runner.temp }}/pulumi/${{ matrix.stack }}"
        assert extra.items() <= pulumi["with"].items()
        assert pulumi["env"] == {"PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}"}


def test_regenerating_is_idempotent_and_a_changed_file_needs_force(tmp_path: Path) -> None:
    root = _repository(tmp_path, MIXED)
    _, written = write_workflow(root)
    assert written.created == [WORKFLOW_PATH]
    first = (root / WORKFLOW_PATH).read_bytes()
    _, written = write_workflow(root)
    assert written.unchanged == [WORKFLOW_PATH] and (root / WORKFLOW_PATH).read_bytes() == first
    (root / WORKFLOW_PATH).write_text(first.decode() + "# edited\n")
    with pytest.raises(ScaffoldError, match=re.escape(f"would be overwritten: {WORKFLOW_PATH}")):
        write_workflow(root)
    _, written = write_workflow(root, force=True)
    assert written.replaced == [WORKFLOW_PATH] and (root / WORKFLOW_PATH).read_bytes() == first


def test_only_the_named_stacks(tmp_path: Path) -> None:
    root = _repository(tmp_path, MIXED)
    stacks, _ = write_workflow(root, only=["prod", "dev"])
    assert stacks.pulumi_stacks == ("prod",) and stacks.local_stacks == ("dev",)
    assert "# Written by `mlspec init ci --stack prod --stack dev`" in (root / WORKFLOW_PATH).read_text()
    with pytest.raises(ScaffoldError, match="did you mean 'prod'"):
        write_workflow(root, only=["prd"])
    (root / "sub").mkdir()
    with pytest.raises(ScaffoldError, match="outside the repository"):
        write_workflow(root / "sub", spec=root)


def test_an_invalid_stack_file_is_reported_at_its_line(tmp_path: Path) -> None:
    root = _repository(tmp_path, "stacks:\n  prod: {target: kubernetes, docker: {host: 'ssh://x'}}\n")
    with pytest.raises(SpecError) as raised:
        write_workflow(root)
    assert any(d.span is not None and d.span.line == 2 for d in raised.value.diagnostics.errors)
    assert not (root / WORKFLOW_PATH).exists()

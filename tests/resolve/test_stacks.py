"""The stack file: strict validation with file:line diagnostics, and which stack and target a command acts on."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlspec.diagnostics import SpecError
from mlspec.graph import analyze
from mlspec.resolve.stacks import select

SPEC = "kind: Workspace\nname: stacked\n"

STACKS = """\
default: dev
stacks:
  dev:
    target: local
  staging:
    target: docker
    docker:
      host: ssh://ml@staging.example.com
      base_image: python:3.11-bookworm
      publish_address: 0.0.0.0
      wheelhouse: /srv/wheels
  prod:
    target: kubernetes
    kubernetes: {context: prod, namespace: iris, registry: registry.example.com/ml}
"""


def _folder(tmp_path: Path, stacks: str | None = STACKS, name: str = "mlspec.stacks.yaml") -> Path:
    (tmp_path / "mlspec.yaml").write_text(SPEC)
    if stacks is not None:
        (tmp_path / name).write_text(stacks)
    return tmp_path


def _errors(folder: Path, stack: str | None = None, environ: dict[str, str] | None = None) -> list[tuple[int, str,
                                                                                                      str]]:
    """(line, summary, hint) of every error selecting `stack` in `folder` reports."""
    with pytest.raises(SpecError) as raised:
        select([folder], stack, None, environ or {})
    return [(d.span.line if d.span else 0, d.summary, d.hint or "") for d in raised.value.diagnostics.sorted()]


def test_a_valid_file_selects_each_stack_with_its_settings(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    staging = select([folder], "staging", None, {})
    assert (staging.stack, staging.target, staging.source, staging.overridden) == ("staging", "docker", "--stack", None)
    assert staging.docker is not None and staging.docker.pulumi_config() == {
        "dockerHost": "ssh://ml@staging.example.com", "baseImage": "python:3.11-bookworm",
        "publishAddress": "0.0.0.0", "wheelhouse": "/srv/wheels"}
    prod = select([folder / "mlspec.yaml"], "prod", None, {})  # a spec file: its folder's stack file
    assert prod.target == "kubernetes" and prod.kubernetes is not None and prod.kubernetes.namespace == "iris"


@pytest.mark.parametrize(("target", "stack", "env", "expected"), [
    (None, None, None, ("dev", "local", "default")),  # the file's default
    (None, None, "staging", ("staging", "docker", "MLSPEC_STACK")),  # the variable over the default
    (None, "prod", "staging", ("prod", "kubernetes", "--stack")),  # --stack over the variable
    ("docker", None, None, ("dev", "docker", "default")),  # --target over the stack's target
    ("local", "staging", "prod", ("staging", "local", "--stack")),  # --target over everything
])
def test_precedence_target_then_stack_then_variable_then_default(
        tmp_path: Path, target: str | None, stack: str | None, env: str | None, expected: tuple[str, str, str]) -> None:
    chosen = select([_folder(tmp_path)], stack, target, {"MLSPEC_STACK": env} if env else {})  # type: ignore[arg-type]
    assert (chosen.stack, chosen.target, chosen.source) == expected
    stack_target = {"dev": "local", "staging": "docker", "prod": "kubernetes"}[expected[0]]
    assert chosen.overridden == (stack_target if target and target != stack_target else None)
    assert chosen.docker is None or (chosen.target == "docker" and chosen.overridden is None)


def test_without_a_stack_file_or_default_it_is_todays_local_target(tmp_path: Path) -> None:
    assert select([_folder(tmp_path, None)], None, None, {}).target == "local"
    assert select([_folder(tmp_path, None)], None, None, {}, fallback="docker").target == "docker"  # compile's
    no_default = select([_folder(tmp_path, "stacks:\n  dev: {target: docker}\n")], None, None, {})
    assert (no_default.stack, no_default.target) == (None, "local")
    assert select([tmp_path], None, None, {"MLSPEC_STACK": ""}).stack is None  # an empty variable names nothing


def test_a_stack_named_without_a_stack_file_is_an_error(tmp_path: Path) -> None:
    folder = _folder(tmp_path, None)
    [(_, summary, hint)] = _errors(folder, "staging")
    assert "--stack staging names a stack" in summary and "has no stack file" in summary
    assert "mlspec.stacks.yaml" in hint
    [(_, summary, _)] = _errors(folder, environ={"MLSPEC_STACK": "prod"})
    assert summary.startswith("MLSPEC_STACK=prod names a stack")


def test_an_unknown_stack_is_refused_at_the_stacks_key_with_a_suggestion(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # paths in messages are shown relative to the working folder
    _folder(tmp_path)
    assert _errors(Path("."), "stagin") == [
        (2, "--stack stagin: mlspec.stacks.yaml has no stack 'stagin'", "did you mean 'staging'?")]


@pytest.mark.parametrize(("text", "line", "summary", "hint"), [
    ("stacks:\n  dev:\n    targt: local\n", 3, "stack file has no field 'targt' in 'stacks.dev'",
     "did you mean 'target'?"),
    ("stacks:\n  dev:\n    target: dokcer\n", 3, "stack file: stacks.dev.target: 'dokcer' is not allowed",
     "did you mean 'docker'?"),
    ("stacks:\n  dev:\n    target: local\n    docker: {host: ssh://a@b}\n", 4,
     "stack file: stacks.dev: docker settings on a stack whose target is local", ""),
    ("stacks:\n  s:\n    target: docker\n    docker:\n      host: http://vm:2375\n", 5,
     "stack file: stacks.s.docker.host: 'http://vm:2375' is not a Docker host", ""),
    ("stacks:\n  s:\n    target: docker\n    docker:\n      wheelhouse: wheels/\n", 5,
     "stack file: stacks.s.docker.wheelhouse: 'wheels/' is not an absolute folder", ""),
    ("stacks:\n  s:\n    target: docker\n    docker: {publish_address: everywhere}\n", 4,
     "stack file: stacks.s.docker.publish_address: 'everywhere' is not an IP address", ""),
    ("stacks:\n  s:\n    target: docker\n    docker: {baseimage: python:3.12}\n", 4,
     "stack file has no field 'baseimage' in 'stacks.s.docker'", "did you mean 'base_image'?"),
    ("stacks:\n  p:\n    target: kubernetes\n    kubernetes:\n      namespace: Team_A\n", 5,
     "stack file: stacks.p.kubernetes.namespace: 'Team_A' is not a namespace name", ""),
    ("stacks:\n  p:\n    target: kubernetes\n    kubernetes:\n      registry: https://r.example.com\n", 5,
     "stack file: stacks.p.kubernetes.registry: 'https://r.example.com' is not a registry", ""),
    ("stacks:\n  dev:\n    target: local\n    state: gs://bucket/mlspec\n", 4,
     "stack file: stacks.dev.state: 'gs://bucket/mlspec': the local target shares its state through a folder", ""),
    ("stacks:\n  dev:\n    target: local\n    state: s3://My_Bucket/mlspec\n", 4,
     "stack file: stacks.dev.state: 's3://My_Bucket/mlspec': 'My_Bucket' is not an S3 bucket name", ""),
    ("stacks:\n  dev:\n    target: local\n    state: file://nas/mlspec\n", 4,
     "stack file: stacks.dev.state: 'file://nas/mlspec' names the host 'nas'", ""),
    ("stacks:\n  s:\n    target: docker\n    state: ftp://host/state\n", 4,
     "stack file: stacks.s.state: 'ftp://host/state' is not a Pulumi backend", ""),
    ("stacks:\n  s:\n    target: docker\n    state: ''\n", 4, "stack file: stacks.s.state: the state location is empty",
     ""),
    ("default: prd\nstacks:\n  prod: {target: kubernetes}\n", 1,
     "stack file: default 'prd' is not one of its stacks", "did you mean 'prod'?"),
    ("stacks:\n  my stack: {target: local}\n", 2, "stack file: 'my stack' is not a stack name", ""),
    ("stacks: {}\n", 1, "stack file: stacks: Dictionary should have at least 1 item", ""),
    ("stacks:\n  dev:\n    target: local\n  dev:\n    target: docker\n", 4, "duplicate key 'dev'", ""),
    ("stacks:\n  dev: {target: local\n", 2, "YAML syntax error: the '{' opened here is not closed", ""),
])
def test_every_mistake_is_reported_at_its_line(tmp_path: Path, text: str, line: int, summary: str, hint: str) -> None:
    [(found_line, found_summary, found_hint)] = _errors(_folder(tmp_path, text), "anything")
    assert (found_line, found_summary[: len(summary)]) == (line, summary), found_summary
    assert hint in found_hint


def test_errors_name_the_stack_file_and_all_are_reported_at_once(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "stacks:\n  a: {target: nowhere}\n  b:\n    target: docker\n    docker: {host: x}\n")
    with pytest.raises(SpecError) as raised:
        select([folder], None, None, {})
    spans = [d.span for d in raised.value.diagnostics.sorted() if d.span]
    assert [(Path(s.file).name, s.line) for s in spans] == [("mlspec.stacks.yaml", 2), ("mlspec.stacks.yaml", 5)]


def test_two_stack_files_in_one_folder_are_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "mlspec.stacks.yml").write_text(STACKS)
    [(_, summary, hint)] = _errors(folder, "dev")
    assert "has both mlspec.stacks.yaml and mlspec.stacks.yml" in summary and "one stack file" in hint


@pytest.mark.parametrize("name", ["mlspec.stacks.yaml", "mlspec.stacks.yml"])
def test_the_stack_file_is_no_spec_document(tmp_path: Path, name: str) -> None:
    analysis = analyze([_folder(tmp_path, STACKS, name)])
    assert not analysis.diagnostics.errors and [Path(f).name for f in analysis.files] == ["mlspec.yaml"]


def test_a_python_spec_keeps_its_stack_file_beside_it(tmp_path: Path) -> None:
    (tmp_path / "mlspec.py").write_text("from mlspec.dsl import Workspace\n\nWorkspace(name='in-python')\n")
    (tmp_path / "mlspec.stacks.yaml").write_text(STACKS)
    analysis = analyze([tmp_path])
    assert not analysis.diagnostics.errors and [Path(f).name for f in analysis.files] == ["mlspec.py"]
    assert select([tmp_path], None, None, {}).stack == "dev"


def test_a_stacks_state_is_resolved_from_the_stack_files_folder_and_kept_for_its_own_target(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "stacks:\n  dev: {target: local, state: ../share}\n"
                               "  ci: {target: local, state: 'file:///mnt/nas/mlspec'}\n"
                               "  staging: {target: docker, state: 's3://bucket/pulumi'}\n"
                               "  shared: {target: local, state: 's3://mlspec-state/ci'}\n"
                               "  plain: {target: local}\n")
    assert select([folder], "dev", None, {}).state == str((tmp_path.parent / "share").resolve())
    assert select([folder], "ci", None, {}).state == "/mnt/nas/mlspec"
    assert select([folder], "staging", None, {}).state == "s3://bucket/pulumi"  # Pulumi's backend reads it
    assert select([folder], "shared", None, {}).state == "s3://mlspec-state/ci"  # the local engine's S3 store
    assert select([folder], "plain", None, {}).state is None
    assert select([folder], "staging", "local", {}).state is None  # another target: not the stack's deployment

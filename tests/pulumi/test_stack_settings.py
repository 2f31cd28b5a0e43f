"""A docker stack of the stack file compiles to `Pulumi.<stack>.yaml` with its settings, which the program honours;
without a docker stack the project is the one `stacks/` holds, byte for byte."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from mlspec.cli.main import main
from tests.pulumi.conftest import CONTAINER, ROOT
from tests.pulumi.harness import run_program


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """examples/iris (with its stack file) copied under a folder laid out like the repository, as the working
    folder, so compiled paths read as they do in stacks/."""
    shutil.copytree(ROOT / "examples" / "iris", tmp_path / "examples" / "iris",
                    ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    (tmp_path / "wheels").mkdir()
    stacks = tmp_path / "examples" / "iris" / "mlspec.stacks.yaml"
    assert stacks.is_file(), "examples/iris keeps a stack file (dev, staging, prod)"
    text = stacks.read_text().replace("      publish_address: 0.0.0.0\n",
                                      f"      publish_address: 0.0.0.0\n      wheelhouse: {tmp_path / 'wheels'}\n")
    stacks.write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLSPEC_STACK", raising=False)
    return tmp_path


def test_compile_for_a_docker_stack_writes_its_settings_and_names_the_stack(layout: Path) -> None:
    assert main(["compile", "examples/iris", "--stack", "staging", "-o", "stacks/iris"]) == 0
    project = layout / "stacks" / "iris"
    assert sorted(p.name for p in project.glob("Pulumi.*.yaml")) == ["Pulumi.staging.yaml"]
    config = yaml.safe_load((project / "Pulumi.staging.yaml").read_text())["config"]
    assert config == {"mlspec:dockerHost": "ssh://ml@staging.example.com", "mlspec:publishAddress": "0.0.0.0",
                      "mlspec:wheelhouse": str(layout / "wheels")}
    # Everything but the stack's settings is the project stacks/iris holds.
    compiled, committed = _tree(project), _tree(ROOT / "stacks" / "iris")
    assert {k: v for k, v in compiled.items() if k != "Pulumi.staging.yaml"} == \
        {k: v for k, v in committed.items() if k != "Pulumi.dev.yaml"}

    captured = run_program(project)  # the stack's own settings file, as `pulumi up` there reads it
    provider = captured.get("pulumi:providers:docker", "docker-host")
    assert provider.inputs["host"] == "ssh://ml@staging.example.com"
    gateway = captured.get(CONTAINER, "iris-gateway")
    assert gateway.provider.startswith(provider.urn) and gateway.inputs["ports"][0]["ip"] == "0.0.0.0"


@pytest.mark.parametrize("default", [None, "dev"])
def test_without_a_docker_stack_the_project_is_the_committed_one(layout: Path, capsys: pytest.CaptureFixture[str],
                                                                 default: str | None) -> None:
    stacks = layout / "examples" / "iris" / "mlspec.stacks.yaml"
    if default:  # a local default stack: --target docker compiles it with the defaults, as before stacks existed
        stacks.write_text(f"default: {default}\n" + stacks.read_text())
    assert main(["compile", "examples/iris", "--target", "docker", "-o", "stacks/iris"]) == 0
    assert _tree(layout / "stacks" / "iris") == _tree(ROOT / "stacks" / "iris")
    again = "mlspec up --stack dev --target docker" if default else "mlspec up --target docker"
    assert again in capsys.readouterr().out


def test_a_stack_that_compiles_to_nothing_says_so(layout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stacks = layout / "examples" / "iris" / "mlspec.stacks.yaml"
    stacks.write_text("default: dev\n" + stacks.read_text())
    assert main(["compile", "examples/iris", "-o", "out"]) == 2  # the default stack targets local
    error = capsys.readouterr().err
    assert "stack 'dev' (from the default of examples/iris/mlspec.stacks.yaml): target local" in error
    assert "--target docker" in error and not (layout / "out").exists()

"""The docker target on the command line: compile, and a clear message where no pulumi command is installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pulumi.conftest import ROOT


def _mlspec(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path if path is not None else os.environ.get("PATH", "")}
    return subprocess.run([sys.executable, "-m", "mlspec.cli.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_compile_writes_the_project(tmp_path: Path) -> None:
    result = _mlspec("compile", "examples/iris", "--target", "docker", "-o", str(tmp_path / "iris"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "iris" / "__main__.py").is_file() and "Wrote a Pulumi project" in result.stdout


def test_without_a_pulumi_command_up_preview_and_down_say_what_to_install(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    for command in ("up", "preview", "down"):
        extra = [] if command == "preview" else ["--yes"]
        result = _mlspec(command, "examples/iris", "--target", "docker", *extra, path=str(empty))
        assert result.returncode == 1, (command, result.stderr)
        assert "no `pulumi` command is on PATH" in result.stderr and "Install the Pulumi CLI" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (ROOT / "examples" / "iris" / ".mlspec" / "docker").exists()  # stopped before writing anything


def test_help_does_not_import_pulumi() -> None:
    code = ("import sys; from mlspec.cli.main import build_parser; build_parser(); "
            "print(any(m == 'pulumi' or m.startswith('pulumi.') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


FAKE_PULUMI = """\
#!/bin/sh
echo "$PULUMI_BACKEND_URL|$*" >> "$FAKE_PULUMI_LOG"
case "$1" in version) echo v3.200.0 ;; esac
exit 0
"""


@pytest.mark.e2e
def test_a_state_location_reaches_the_pulumi_process_as_its_backend(tmp_path: Path) -> None:
    """--state, MLSPEC_STATE and a stack's `state:` set PULUMI_BACKEND_URL of every pulumi command mlspec runs (a
    pulumi that records its environment stands for the real one); without them the workspace keeps the state."""
    import shutil

    spec = tmp_path / "iris"
    shutil.copytree(ROOT / "examples" / "iris", spec, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    (spec / "mlspec.stacks.yaml").write_text("stacks:\n  prod: {target: kubernetes, state: 's3://team-bucket/mlspec'}\n")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "pulumi").write_text(FAKE_PULUMI)
    (fake / "pulumi").chmod(0o755)
    log = tmp_path / "pulumi.log"

    def backends(*args: str, **env: str) -> set[str]:
        log.unlink(missing_ok=True)
        environ = {k: v for k, v in os.environ.items() if k not in ("MLSPEC_STACK", "MLSPEC_STATE")}
        environ.update(PATH=f"{fake}:/usr/bin:/bin", FAKE_PULUMI_LOG=str(log), PULUMI_CONFIG_PASSPHRASE="test",
                       PYTHONPATH=str(ROOT), **env)
        subprocess.run([sys.executable, "-m", "mlspec.cli.main", "preview", str(spec), *args], env=environ,
                       capture_output=True, text=True, timeout=120)
        calls = log.read_text().splitlines()
        assert any("stack select" in call for call in calls) and any(" preview " in call for call in calls), calls
        return {call.split("|", 1)[0] for call in calls if not call.endswith("|version")}

    assert backends("--target", "docker") == {(spec / ".mlspec" / "docker" / "state").resolve().as_uri()}
    assert backends("--target", "docker", "--state", str(tmp_path / "shared")) == {(tmp_path / "shared").as_uri()}
    assert (tmp_path / "shared").is_dir()  # a folder backend is made for Pulumi, which expects it
    assert backends("--stack", "prod") == {"s3://team-bucket/mlspec"}

"""The docker target on the command line: compile, and a clear message where no pulumi command is installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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

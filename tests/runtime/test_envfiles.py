"""`python -m mlspec.runtime.envfiles`: the files a container's environment carries are written before its command
runs in the same process, readable by the user alone, and the command does not inherit the variable."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from mlspec.runtime import envfiles

ROOT = Path(__file__).resolve().parents[2]


def run(files: dict[str, str] | str, *command: str) -> subprocess.CompletedProcess[str]:
    value = files if isinstance(files, str) else envfiles.variable(files).partition("=")[2]
    env = {**os.environ, "PYTHONPATH": str(ROOT), envfiles.ENV: value}
    return subprocess.run([sys.executable, "-m", "mlspec.runtime.envfiles", *command], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_files_are_written_then_the_command_replaces_the_process(tmp_path: Path) -> None:
    config = tmp_path / "nested" / "gateway.json"
    probe = ("import json, os, sys; print(json.dumps({'text': open(sys.argv[1]).read(), "
             f"'inherited': {envfiles.ENV!r} in os.environ}}))")
    done = run({str(config): '{"endpoint": "iris"}\n'}, sys.executable, "-c", probe, str(config))
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["text"] == '{"endpoint": "iris"}\n' and seen["inherited"] is False
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_a_relative_path_or_bad_json_stops_before_the_command(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    touch = (sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    assert run({"relative.json": "{}"}, *touch).returncode == 2 and not marker.exists()
    assert run("[1, 2]", *touch).returncode == 2 and not marker.exists()
    assert run("{}", *touch).returncode == 0 and marker.exists()


def test_no_command_is_a_usage_error() -> None:
    done = run({})
    assert done.returncode == 2 and "usage" in done.stderr

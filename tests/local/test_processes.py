"""Process ownership marks and the interpreter a job's `python` runs, without a workspace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlspec.backends.local.processes import (
    STARTED_BY_VAR,
    SUPERVISOR,
    abandoned_processes,
    interpreter_bin,
    owner_alive,
    this_up,
    up_process_env,
)


def test_an_up_is_alive_only_as_the_process_it_was() -> None:
    me = this_up()
    assert owner_alive(me) and owner_alive(SUPERVISOR)
    _, pid, ticks = me.split()
    assert not owner_alive(f"up {pid} {int(ticks) + 1}")  # the same pid, reused by a later process
    assert not owner_alive("up 999999 1") and not owner_alive("something else")


def test_only_processes_of_an_up_that_is_gone_are_abandoned(tmp_path: Path) -> None:
    workspace = str(tmp_path)
    code = "import time; time.sleep(30)"
    live = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **up_process_env(workspace, "job/a")})
    gone_env = {**os.environ, **up_process_env(workspace, "job/b"), STARTED_BY_VAR: "up 999999 1"}
    gone = subprocess.Popen([sys.executable, "-c", code], env=gone_env)
    supervised = subprocess.Popen([sys.executable, "-c", code], env={
        **os.environ, **up_process_env(workspace, "endpoint/e/gateway"), STARTED_BY_VAR: SUPERVISOR})
    try:
        assert abandoned_processes(workspace) == {gone.pid: "job/b"}
    finally:
        for proc in (live, gone, supervised):
            proc.kill()
            proc.wait()


def test_outside_a_virtualenv_a_jobs_python_is_a_script_running_mlspecs_interpreter(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "prefix", sys.base_prefix)  # as when mlspec runs from a system interpreter
    folder = Path(interpreter_bin(tmp_path))
    assert folder.is_relative_to(tmp_path)
    for name in ("python", "python3"):
        printed = subprocess.run([str(folder / name), "-c", "import sys; print(sys.executable)"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        assert Path(printed).resolve() == Path(sys.executable).resolve()
    assert interpreter_bin(tmp_path) == str(folder)  # the same scripts, not rewritten


def test_inside_a_virtualenv_a_jobs_python_is_its_bin_folder(tmp_path: Path) -> None:
    if sys.prefix == sys.base_prefix:
        pytest.skip("mlspec does not run from a virtualenv here")
    assert interpreter_bin(tmp_path) == str(Path(sys.executable).parent)

"""MLflow's usage telemetry is off wherever mlspec runs MLflow: its thread, failing to reach its service from an
internal network, removes a variable from os.environ while client calls copy it, and a training job's call to the
tracking server failed with "API request ... failed with exception '_MLFLOW_TELEMETRY_SESSION_ID'"."""

from __future__ import annotations

import os
import subprocess
import sys

from mlspec.runtime.servers import mlflow_server

PROBE = ("import mlspec, os, subprocess, sys\n"
         "read = 'import os; print(os.environ.get(\"MLFLOW_DISABLE_TELEMETRY\"))'\n"
         "child = subprocess.run([sys.executable, '-c', read], capture_output=True, text=True, check=True)\n"
         "print(os.environ.get('MLFLOW_DISABLE_TELEMETRY'), child.stdout.strip())\n")


def _run(extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_DISABLE_TELEMETRY"}
    done = subprocess.run([sys.executable, "-c", PROBE], env={**env, **extra}, capture_output=True, text=True,
                          check=True, timeout=60)
    return done.stdout.strip()


def test_importing_mlspec_turns_telemetry_off_for_the_process_and_what_it_starts() -> None:
    assert _run({}) == "true true"


def test_a_users_own_setting_is_kept() -> None:
    assert _run({"MLFLOW_DISABLE_TELEMETRY": "false"}) == "false false"


def test_the_workspace_tracking_server_runs_with_telemetry_off() -> None:
    command = mlflow_server("/data", ["mlflow"])[-1]
    assert "exec env MLFLOW_DISABLE_TELEMETRY=true mlflow server " in command

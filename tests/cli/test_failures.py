"""The machine failing a command: a closed pipe, a corrupt state or MLflow database, an unwritable or full
workspace folder. Every command answers with one message naming the path, never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON = [sys.executable, "-m", "mlspec.cli.main"]

# Every command that reads the workspace's state or tracking store.
COMMANDS = [["status"], ["plan"], ["up", "--yes"], ["down", "--yes"], ["logs", "train"], ["runs"], ["models"],
            ["endpoint", "invoke", "iris", "--data", "request.json"]]
STATE_COMMANDS = [argv for argv in COMMANDS if argv[0] not in ("runs", "models")]  # those read MLflow alone


def _env() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1"}


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    folder = tmp_path / "iris"
    shutil.copytree(ROOT / "examples" / "iris", folder, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    (folder / ".mlspec").mkdir()
    return folder


def _run(argv: list[str], spec: Path, prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(prefix or []), *PYTHON, *argv, str(spec)], cwd=spec, env=_env(), text=True,
                          capture_output=True, timeout=120)


@pytest.mark.parametrize("argv", [["schema"], ["plan"], ["graph"], ["validate"]], ids=lambda a: a[0])
def test_a_closed_pipe_ends_quietly_with_141(spec: Path, argv: list[str]) -> None:
    if argv != ["schema"]:
        argv = [*argv, str(spec)]
    process = subprocess.Popen([*PYTHON, *argv], cwd=spec, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader went away before the first line, like `| head -0`
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141, err
    assert err == ""


@pytest.mark.parametrize("follow", [[], ["-f"]], ids=["logs", "logs -f"])
def test_logs_into_a_closed_pipe_end_quietly(spec: Path, follow: list[str]) -> None:
    from mlspec.backends.local.state import StateStore
    from mlspec.plan import Record

    log = spec / "train.log"
    log.write_text("".join(f"line {i}\n" for i in range(20000)))
    store = StateStore(spec / ".mlspec" / "state.db")
    store.put(Record("job/train", "Job", "0" * 64, {}, {}, {}, {"log": str(log)}, "ready"))
    store.close()
    process = subprocess.Popen([*PYTHON, "logs", "train", *follow, str(spec)], cwd=spec, env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141, err
    assert err == ""


@pytest.mark.parametrize("argv", STATE_COMMANDS, ids=lambda a: a[0] if a[0] != "endpoint" else "invoke")
def test_a_garbage_state_db_is_one_message_naming_it(spec: Path, argv: list[str]) -> None:
    (spec / ".mlspec" / "state.db").write_bytes(os.urandom(4096))
    result = _run(argv, spec)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"the state file {spec / '.mlspec' / 'state.db'} is not a readable mlspec state" in result.stderr
    assert "state.db.bak" in result.stderr


@pytest.mark.parametrize("argv", [["up", "--yes"], ["runs"], ["models"]], ids=lambda a: a[0])
def test_a_garbage_mlflow_db_is_one_message_naming_it(spec: Path, argv: list[str]) -> None:
    (spec / ".mlspec" / "mlflow.db").write_bytes(os.urandom(4096))
    result = _run(argv, spec)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    path = spec / ".mlspec" / "mlflow.db"
    assert f"the MLflow tracking database {path} is not a readable SQLite database" in result.stderr
    assert f"mv {path} {path}.broken" in result.stderr


def _in_own_mounts(script: str, folder: Path) -> list[str]:
    """A command prefix that runs the CLI with `script` applied to `folder` in a private mount namespace."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare for a private mount")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.decode().strip()}")
    return ["unshare", "-m", "sh", "-c", f'{script} && exec "$@"', str(folder)]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: a[0] if a[0] != "endpoint" else "invoke")
def test_a_read_only_workspace_folder_is_one_message_naming_it(spec: Path, argv: list[str]) -> None:
    workspace = spec / ".mlspec"
    subprocess.run([*PYTHON, "plan", str(spec)], cwd=spec, env=_env(), check=True, capture_output=True)
    from mlspec.backends.local.state import StateStore

    StateStore(workspace / "state.db").close()  # a workspace that `up` used before
    if os.geteuid() != 0:
        workspace.chmod(0o555)
        prefix: list[str] = []
    else:
        prefix = _in_own_mounts('mount --bind "$0" "$0" && mount -o remount,bind,ro "$0"', workspace)
    try:
        result = _run(argv, spec, prefix)
    finally:
        workspace.chmod(0o755)
    if argv == ["runs"] or argv == ["models"]:  # reading MLflow needs no write: an empty listing is right
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        return
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"cannot write {workspace}" in result.stderr and f"ls -ld {workspace}" in result.stderr


def test_a_full_disk_is_one_message_naming_the_folder(spec: Path) -> None:
    workspace = spec / ".mlspec"
    prefix = _in_own_mounts('mount -t tmpfs -o size=160k tmpfs "$0"', workspace)
    result = _run(["up", "--yes"], spec, prefix)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"cannot write {workspace}" in result.stderr and "no space is left on the device" in result.stderr


def test_invoke_with_a_missing_request_file_names_it(spec: Path) -> None:
    from mlspec.backends.local.state import StateStore
    from mlspec.plan import Record

    store = StateStore(spec / ".mlspec" / "state.db")
    store.put(Record("endpoint/iris", "Endpoint", "0" * 64, {}, {}, {}, {"url": "http://127.0.0.1:1"}, "ready"))
    store.close()
    result = _run(["endpoint", "invoke", "iris", "--data", "missing.json"], spec)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "cannot read the request body missing.json: No such file or directory" in result.stderr

"""The batch scorer as a real process: `kill -9` mid-run, then a re-run that finishes with identical output."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from test_batch_support import make_run, numbers_frame, register_flaky, start_cli, write
from test_serving_support import IrisStore, shared_store

from mlspec.runtime.batch.journal import STAGING
from mlspec.runtime.batch.runner import run_batch

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> IrisStore:
    return shared_store(tmp_path_factory)


@pytest.fixture(scope="module")
def flaky(store: IrisStore, tmp_path_factory: pytest.TempPathFactory) -> str:
    return register_flaky(store, tmp_path_factory.mktemp("flaky"))


def journal_entries(output: Path) -> int:
    try:
        return len((output / STAGING / "journal.jsonl").read_bytes().splitlines()) - 1
    except OSError:
        return 0


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "_manifest.json"}


@pytest.mark.parametrize("mode", ["append", "per_file"])
def test_a_killed_run_resumes_and_writes_what_an_uninterrupted_run_writes(
        flaky: str, store: IrisStore, tmp_path: Path, mode: str) -> None:
    inputs = tmp_path / "in"
    values = [float(i) for i in range(2400)]
    values[333] = -1.0  # one failed mini-batch, recorded before the kill, must stay failed after it
    write(numbers_frame(values[:1500]), inputs / "a.csv")
    write(numbers_frame(values[1500:]), inputs / "b.jsonl")
    out = tmp_path / "out"
    run = make_run(store.tracking_uri, flaky, inputs, out, mode=mode, mini_batch_size=20, max_concurrency=2)
    process, result_path, log = start_cli(run, tmp_path, env={"BATCH_DELAY_S": "0.03"})
    try:
        deadline = time.monotonic() + 120
        while journal_entries(out) < 40:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the batch run made no progress:\n" + log.read_text()
            time.sleep(0.05)
        process.kill()  # SIGKILL: no handler runs, the journal is whatever was on disk
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    assert not result_path.exists()
    done_before = journal_entries(out)
    assert 40 <= done_before < 120
    assert not (out / "predictions.csv").exists() and not (out / "a.csv").exists()  # no half-written result

    resumed, result_path, log = start_cli(run, tmp_path, name="resume")
    assert resumed.wait(180) == 0, log.read_text()
    result = json.loads(result_path.read_text())
    assert result["resumed_batches"] >= done_before
    assert (result["rows_scored"], result["rows_failed"], result["batches"]) == (2380, 20, 120)
    assert "resuming:" in log.read_text()
    assert not (out / STAGING).exists()

    reference = run_batch(run.model_copy(update={"output": str(tmp_path / "reference")}))
    assert reference.status == "succeeded"
    assert files(out) == files(tmp_path / "reference")


def test_the_command_exits_1_with_a_result_on_failure_and_2_on_a_bad_file(
        flaky: str, store: IrisStore, tmp_path: Path) -> None:
    write(numbers_frame([-1.0, 1.0]), tmp_path / "in.csv")
    run = make_run(store.tracking_uri, flaky, tmp_path / "in.csv", tmp_path / "out", error_threshold=0)
    process, result_path, log = start_cli(run, tmp_path)
    assert process.wait(120) == 1
    assert "more than error_threshold 0" in json.loads(result_path.read_text())["error"]
    assert "Traceback" not in log.read_text()
    (tmp_path / "broken.json").write_text('{"endpoint": "x"}')
    import subprocess
    import sys

    broken = subprocess.run([sys.executable, "-m", "mlspec.runtime.batch", str(tmp_path / "broken.json")],
                            capture_output=True, text=True, timeout=60)
    assert broken.returncode == 2 and "model_uri" in broken.stderr and "Traceback" not in broken.stderr

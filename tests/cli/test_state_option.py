"""Which shared state location a command uses: --state, else MLSPEC_STATE, else the stack's `state:`, each checked
against the command's target (a folder or an S3 bucket for the local engine, Pulumi's backends for docker and
kubernetes)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mlspec.cli.common import CommandError
from mlspec.cli.shared_state import location_of
from mlspec.resolve.stacks import select


def _args(folder: Path, stack: str | None, state: str | None, target: str | None = None) -> argparse.Namespace:
    selection = select([folder], stack, target, {})  # type: ignore[arg-type]
    return argparse.Namespace(paths=[str(folder)], state=state, stack=stack, target=selection.target,
                              selection=selection)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "mlspec.yaml").write_text("kind: Workspace\nname: w\n")
    (tmp_path / "mlspec.stacks.yaml").write_text("stacks:\n  ci: {target: local, state: share}\n"
                                                 "  staging: {target: docker, state: 's3://bucket/p'}\n")
    return tmp_path


def test_the_option_then_the_variable_then_the_stack(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(folder)
    monkeypatch.delenv("MLSPEC_STATE", raising=False)
    assert location_of(_args(folder, "ci", None)) == str((folder / "share").resolve())
    assert location_of(_args(folder, None, None)) is None
    monkeypatch.setenv("MLSPEC_STATE", "file:///mnt/nas/ml")
    assert location_of(_args(folder, "ci", None)) == "/mnt/nas/ml"
    assert location_of(_args(folder, "ci", "other")) == str((folder / "other").resolve())  # from the working folder
    assert location_of(_args(folder, "staging", None)) == "/mnt/nas/ml"
    monkeypatch.delenv("MLSPEC_STATE")
    assert location_of(_args(folder, "staging", None)) == "s3://bucket/p"
    assert location_of(_args(folder, "staging", None, target="local")) is None  # not the stack's deployment


@pytest.mark.parametrize(("state", "target", "says"), [
    ("gs://bucket/ml", "local", "--state: 'gs://bucket/ml': the local target shares its state through a folder, "
                                "written as a path or a file:// URL (a mounted network share or volume), or through "
                                "an S3 bucket"),
    ("s3://ab/ml", "local", "'ab' is not an S3 bucket name (3 to 63 lowercase letters"),
    ("s3://-bucket/ml", "local", "'-bucket' is not an S3 bucket name"),
    ("s3://192.168.1.1/ml", "local", "is not an S3 bucket name"),
    ("s3:///ml", "local", "names no bucket: write s3://bucket/prefix"),
    ("s3://mlspec-state/ci?region=eu-west-1", "local", "reads the region, profile and endpoint from boto3's "
                                                        "configuration (AWS_REGION"),
    ("s3://mlspec-state/a//b", "local", "has an empty folder in its prefix"),
    ("file://nas/share", "local", "names the host 'nas'"),
    ("ftp://host/x", "docker", "is not a Pulumi backend"),
])
def test_a_location_the_target_cannot_use_is_refused(folder: Path, state: str, target: str, says: str) -> None:
    with pytest.raises(CommandError) as raised:
        location_of(_args(folder, None, state, target))
    assert says in str(raised.value) and raised.value.code == 2


@pytest.mark.parametrize("state", ["s3://mlspec-state", "s3://mlspec-state/ci", "s3://ml.state-2/team/ci/"])
def test_an_s3_bucket_is_a_local_state_location_kept_as_written(folder: Path, state: str) -> None:
    assert location_of(_args(folder, None, state, "local")) == state

"""A shared state location through the real CLI: `up --state DIR` (or `s3://bucket/prefix`, on a real S3 endpoint)
publishes what it applied; a copy of the spec without its workspace folder (a CI checkout) plans against it, writing
nothing; a held lock stops a second `up` with its holder's details, `--lock-timeout` waits for it, and
`mlspec state unlock` breaks a stale one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.s3_server import s3_endpoint, s3_environment  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

SPEC = """\
kind: Workspace
name: shared-demo
---
kind: Compute
name: cpu
type: cluster
max_nodes: 1
resources: {cpus: 1, memory: 1Gi}
---
kind: Environment
name: base
environment_variables: {SEED: '1'}
---
kind: Data
name: rows
path: rows.csv
"""

HOLDER = """\
import sys, time
from mlspec.backends.local.shared_lock import acquire, release
from mlspec.backends.local.shared_store import store_at
store = store_at(sys.argv[1])
mine = acquire(store, sys.argv[2], "mlspec up")
print("held", flush=True)
time.sleep(float(sys.argv[3]))
if float(sys.argv[3]) < 60:
    release(store, sys.argv[2], mine)
"""


def _mlspec(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("MLSPEC_STACK", "MLSPEC_STATE")}
    environ.update({"PYTHONPATH": str(ROOT)}, **(env or {}))
    return subprocess.run([sys.executable, "-m", "mlspec.cli.main", *args], env=environ, capture_output=True,
                          text=True, timeout=120)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _hold(location: str, name: str, seconds: float, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, location, name, str(seconds)], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


@pytest.fixture
def deployed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The spec `up` with --state (its workspace in spec/.mlspec), and a copy of the spec without it."""
    spec, share = tmp_path / "spec", tmp_path / "share"
    spec.mkdir()
    (spec / "mlspec.yaml").write_text(SPEC)
    (spec / "rows.csv").write_text("x,y\n0,0\n1,1\n")
    up = _mlspec("up", str(spec), "--state", str(share), "--yes")
    assert up.returncode == 0, up.stderr
    assert f"published the state (3 resource(s)) to {share / 'shared-demo.json'}" in up.stderr
    copy = tmp_path / "checkout"
    shutil.copytree(spec, copy, ignore=shutil.ignore_patterns(".mlspec"))
    return spec, share, copy


def test_a_checkout_without_the_workspace_plans_against_the_published_state(deployed: tuple[Path, Path, Path]) -> None:
    spec, share, copy = deployed
    snapshot = json.loads((share / "shared-demo.json").read_text())
    assert snapshot["version"] == 1 and sorted(r["id"] for r in snapshot["records"]) == [
        "compute/cpu", "data/rows", "environment/base"]
    before, shared_before = _files(copy), _files(share)

    same = _mlspec("plan", str(copy), "--state", str(share), "--detailed-exitcode")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "No changes" in same.stdout
    assert (f"planned against the state published at {snapshot['published_at']} by {snapshot['by']}"
            in same.stderr)
    by_variable = _mlspec("plan", str(copy), "--json", env={"MLSPEC_STATE": share.as_uri()})
    assert by_variable.returncode == 0
    document = json.loads(by_variable.stdout)
    assert {c["action"] for c in document["changes"]} == {"noop"}
    assert document["base"] == {"against": "state", "location": str(share / "shared-demo.json"),
                                "description": f"the state published at {snapshot['published_at']} by "
                                               f"{snapshot['by']}",
                                "published_at": snapshot["published_at"], "by": snapshot["by"]}
    assert _files(copy) == before and _files(share) == shared_before  # nothing written, no workspace made

    (copy / "mlspec.yaml").write_text(SPEC.replace("SEED: '1'", "SEED: '2'"))
    changed = _mlspec("plan", str(copy), "--state", str(share), "--detailed-exitcode")
    assert changed.returncode == 2, changed.stderr
    assert "environment/base" in changed.stdout and "SEED: 1 → 2" in changed.stdout

    (copy / "mlspec.stacks.yaml").write_text("stacks:\n  ci: {target: local, state: ../share}\n")
    by_stack = _mlspec("plan", str(copy), "--stack", "ci", "--detailed-exitcode")
    assert by_stack.returncode == 2 and "planned against the state published" in by_stack.stderr

    nothing = _mlspec("plan", str(copy), "--state", str(copy.parent / "empty"), "--detailed-exitcode")
    assert nothing.returncode == 2 and "no state published at" in nothing.stderr
    assert "3 to create" in nothing.stdout and not (copy.parent / "empty").exists()

    refused = _mlspec("plan", str(copy), "--state", "gs://bucket/mlspec")
    assert refused.returncode == 2 and "the local target shares its state through a folder" in refused.stderr

    down = _mlspec("down", str(spec), "--state", str(share), "--yes")
    assert down.returncode == 0, down.stderr
    assert json.loads((share / "shared-demo.json").read_text())["records"] == []
    gone = _mlspec("plan", str(copy), "--state", str(share))
    assert gone.returncode == 0 and "3 to create" in gone.stdout


def test_a_held_lock_stops_up_with_its_holder_until_released_or_broken(deployed: tuple[Path, Path, Path]) -> None:
    spec, share, copy = deployed
    lock = share / "shared-demo.lock"
    holder = _hold(str(share), lock.name, 600)
    try:
        blocked = _mlspec("up", str(spec), "--state", str(share), "--yes")
        assert blocked.returncode == 1, blocked.stdout + blocked.stderr
        assert "is locked by `mlspec up` by " in blocked.stderr and f"(pid {holder.pid}) since " in blocked.stderr
        assert f"mlspec state unlock {spec} --state {share}" in blocked.stderr
        planned = _mlspec("plan", str(copy), "--state", str(share))
        assert planned.returncode == 0 and f"(pid {holder.pid}) since" in planned.stderr  # said, not an error
        alive = _mlspec("state", "unlock", str(spec), "--state", str(share))
        assert alive.returncode == 1 and "pass --force once you are sure" in alive.stderr and lock.exists()
    finally:
        holder.kill()
        holder.wait()
    stale = _mlspec("up", str(spec), "--state", str(share), "--yes")
    assert stale.returncode == 1 and "that process has ended without releasing it" in stale.stderr
    unlocked = _mlspec("state", "unlock", str(spec), "--state", str(share))
    assert unlocked.returncode == 0 and "Removed the lock" in unlocked.stdout and not lock.exists()

    waited_for = _hold(str(share), lock.name, 1.0)
    try:
        waits = _mlspec("up", str(spec), "--state", str(share), "--yes", "--lock-timeout", "60")
    finally:
        waited_for.wait()
    assert waits.returncode == 0, waits.stderr
    assert "published the state (3 resource(s))" in waits.stderr and not lock.exists()
    assert _mlspec("down", str(spec), "--yes").returncode == 0


def test_an_up_that_partly_failed_publishes_what_it_applied(tmp_path: Path) -> None:
    """What was applied is real: the snapshot records it, and the failed job as failed, so a checkout's plan retries
    that job alone."""
    spec, share = tmp_path / "spec", tmp_path / "share"
    spec.mkdir()
    (spec / "mlspec.yaml").write_text("kind: Workspace\nname: partial\n---\nkind: Data\nname: rows\npath: rows.csv\n"
                                      "---\nkind: Job\nname: broken\ncommand: python -c 'raise SystemExit(3)'\n"
                                      "inputs: {data: 'data:rows'}\n")
    (spec / "rows.csv").write_text("x\n1\n")
    try:
        failed = _mlspec("up", str(spec), "--state", str(share), "--yes")
        assert failed.returncode == 1 and "1 step(s) failed" in failed.stderr, failed.stderr
        records = json.loads((share / "partial.json").read_text())["records"]
        assert {r["id"]: r["status"] for r in records} == {
            "compute/local": "ready", "data/rows": "ready", "job/broken": "failed"}
        assert not (share / "partial.lock").exists()
        copy = tmp_path / "checkout"
        shutil.copytree(spec, copy, ignore=shutil.ignore_patterns(".mlspec"))
        planned = _mlspec("plan", str(copy), "--state", str(share))
        assert planned.returncode == 0 and "previous apply did not finish (failed)" in planned.stdout
        assert "0 to create, 1 to update" in planned.stdout
    finally:
        _mlspec("down", str(spec), "--yes")


def test_an_s3_bucket_is_shared_like_a_folder(tmp_path: Path, s3_endpoint: str) -> None:  # noqa: F811
    """`up --state s3://...` publishes to the bucket; a checkout without the workspace plans against it (no changes,
    nothing written); a lock held in the bucket stops a second `up` with its holder, and is broken only with --force
    while its holder may run; boto3 finds the store through AWS_ENDPOINT_URL alone."""
    import boto3

    env = s3_environment(s3_endpoint)
    state = "s3://mlspec-state/ci"
    spec = tmp_path / "spec"
    spec.mkdir()
    (spec / "mlspec.yaml").write_text(SPEC)
    (spec / "rows.csv").write_text("x,y\n0,0\n1,1\n")
    bucket = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")

    def objects() -> list[str]:
        return sorted(o["Key"] for o in bucket.list_objects_v2(Bucket="mlspec-state").get("Contents", []))

    up = _mlspec("up", str(spec), "--state", state, "--yes", env=env)
    assert up.returncode == 0, up.stderr
    assert f"published the state (3 resource(s)) to {state}/shared-demo.json" in up.stderr
    assert objects() == ["ci/shared-demo.json"]  # the lock released
    snapshot = json.loads(bucket.get_object(Bucket="mlspec-state", Key="ci/shared-demo.json")["Body"].read())
    assert sorted(r["id"] for r in snapshot["records"]) == ["compute/cpu", "data/rows", "environment/base"]
    try:
        copy = tmp_path / "checkout"
        shutil.copytree(spec, copy, ignore=shutil.ignore_patterns(".mlspec"))
        before = _files(copy)
        same = _mlspec("plan", str(copy), "--detailed-exitcode", "--json", env={**env, "MLSPEC_STATE": state})
        assert same.returncode == 0, same.stdout + same.stderr
        document = json.loads(same.stdout)
        assert {c["action"] for c in document["changes"]} == {"noop"}
        assert document["base"]["location"] == f"{state}/shared-demo.json"
        assert document["base"]["published_at"] == snapshot["published_at"]
        assert _files(copy) == before and objects() == ["ci/shared-demo.json"]  # nothing written anywhere

        holder = _hold(state, "shared-demo.lock", 600, env)
        try:
            blocked = _mlspec("up", str(spec), "--state", state, "--yes", env=env)
            assert blocked.returncode == 1, blocked.stdout + blocked.stderr
            assert (f"the shared state at {state} is locked by `mlspec up` by " in blocked.stderr
                    and f"(pid {holder.pid}) since " in blocked.stderr)
            alive = _mlspec("state", "unlock", str(spec), "--state", state, env=env)
            assert alive.returncode == 1 and "pass --force once you are sure" in alive.stderr
            assert objects() == ["ci/shared-demo.json", "ci/shared-demo.lock"]
        finally:
            holder.kill()
            holder.wait()
        forced = _mlspec("state", "unlock", str(spec), "--state", state, "--force", env=env)
        assert forced.returncode == 0 and f"Removed the lock of {state} held by `mlspec up`" in forced.stdout
        assert objects() == ["ci/shared-demo.json"]

        nowhere = _mlspec("plan", str(copy), "--state", "s3://no-such-bucket-here/ci", env=env)
        assert nowhere.returncode == 1 and "cannot read s3://no-such-bucket-here/ci/shared-demo.json" in nowhere.stderr
        assert "AWS_ENDPOINT_URL" in nowhere.stderr
    finally:
        down = _mlspec("down", str(spec), "--state", state, "--yes", env=env)
        assert down.returncode == 0, down.stderr
    assert json.loads(bucket.get_object(Bucket="mlspec-state", Key="ci/shared-demo.json")["Body"].read())[
        "records"] == []

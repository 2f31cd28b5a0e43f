"""The test engine's translation of container inputs and its no-engine policy; these need no Docker engine."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tests.docker import conftest
from tests.docker.container_config import UnsupportedInput, duration_ns, plan_container
from tests.docker.passwords import random_password


def test_go_durations_become_nanoseconds() -> None:
    assert duration_ns("5s") == 5_000_000_000
    assert duration_ns("500ms") == 500_000_000
    assert duration_ns("1m30s") == 90_000_000_000
    assert duration_ns("") == 0 and duration_ns(None) == 0
    with pytest.raises(UnsupportedInput, match="not a Go duration"):
        duration_ns("5 seconds")


def test_declared_inputs_map_onto_the_sdk(tmp_path: Path) -> None:
    inputs = {
        "image": "app:1", "command": ["python", "-m", "x"], "envs": ["A=1"], "user": "mlspec",
        "ports": [{"internal": 8080.0, "external": 25000.0, "ip": "127.0.0.1"}],
        "volumes": [{"volumeName": "data", "containerPath": "/data", "readOnly": True}],
        "networksAdvanced": [{"name": "net", "aliases": ["web"]}, {"name": "other"}],
        "healthcheck": {"tests": ["CMD", "true"], "interval": "2s", "retries": 3.0},
        "restart": "unless-stopped", "memory": 512.0, "cpuShares": 1024.0,
        "labels": [{"label": "role", "value": "web"}],
        "uploads": [{"file": "/etc/app/config.json", "content": "{}"}, {"file": "/bin/go", "content": "x",
                                                                        "executable": True}],
    }
    plan = plan_container(inputs, "web", {"mlspec.test": "s1"}, tmp_path)
    create = plan.create
    assert create["image"] == "app:1" and create["name"] == "web" and create["user"] == "mlspec"
    assert create["environment"] == ["A=1"]
    assert create["ports"] == {"8080/tcp": ("127.0.0.1", 25000)}
    assert create["volumes"] == {"data": {"bind": "/data", "mode": "ro"}}
    assert create["healthcheck"] == {"test": ["CMD", "true"], "interval": 2_000_000_000, "timeout": 0,
                                     "retries": 3, "start_period": 0}
    assert create["restart_policy"] == {"Name": "unless-stopped", "MaximumRetryCount": 0}
    assert create["mem_limit"] == 512 * 1024 * 1024 and create["cpu_shares"] == 1024
    assert create["labels"] == {"role": "web", "mlspec.test": "s1"}
    assert create["network"] == "net" and create["networking_config"]["net"]["Aliases"] == ["web"]
    assert plan.networks == [("net", ["web"]), ("other", [])]
    assert plan.uploads is not None
    with tarfile.open(fileobj=io.BytesIO(plan.uploads)) as archive:
        modes = {m.name: m.mode for m in archive.getmembers()}
    assert modes == {"etc/app/config.json": 0o644, "bin/go": 0o744}


def test_gpu_device_requests_reach_the_sdk(tmp_path: Path) -> None:
    inputs = {"image": "app:1", "deviceRequests": [{"driver": "nvidia", "count": 2.0, "capabilities": ["gpu"]}]}
    (request,) = plan_container(inputs, "gpu", {}, tmp_path).create["device_requests"]
    assert (request["Driver"], request["Count"], request["Capabilities"]) == ("nvidia", 2, [["gpu"]])


def test_inputs_the_engine_cannot_honour_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedInput, match=r"inputs \['devices'\] are not reproduced"):
        plan_container({"image": "x", "devices": [{"hostPath": "/dev/kvm"}]}, "c", {}, tmp_path)
    with pytest.raises(UnsupportedInput, match="declares no image"):
        plan_container({"command": ["true"]}, "c", {}, tmp_path)


def test_without_an_engine_ci_fails_and_a_laptop_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        conftest._unavailable("no Docker engine answers")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="run scripts/docker-engine"):
        conftest._unavailable("no Docker engine answers")


def test_passwords_follow_their_inputs() -> None:
    key = random_password({"length": 43.0, "special": False})
    assert len(key) == 43 and key.isalnum()
    digits = random_password({"length": 8, "upper": False, "lower": False, "special": False})
    assert digits.isdigit() and len(digits) == 8
    with pytest.raises(ValueError, match="allow no characters"):
        random_password({"upper": False, "lower": False, "numeric": False, "special": False})

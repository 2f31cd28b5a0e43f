"""Suite-wide fixtures: Docker test files take turns on the one engine when pytest-xdist runs files side by side."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from pathlib import Path

import pytest

ENGINE_TURN = Path(__file__).resolve().parents[1] / ".cache" / "docker-tests.lock"


@pytest.fixture(scope="module", autouse=True)
def docker_engine_turn(request: pytest.FixtureRequest) -> Iterator[None]:
    """Hold an exclusive lock while a file of Docker tests runs: they build and remove images of the same compiled
    stacks, so two of them at once on different workers would remove what the other is using."""
    marks = getattr(request.module, "pytestmark", [])
    if not any(mark.name == "docker" for mark in (marks if isinstance(marks, list) else [marks])):
        yield
        return
    ENGINE_TURN.parent.mkdir(parents=True, exist_ok=True)
    with open(ENGINE_TURN, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, after the module's last test
        yield

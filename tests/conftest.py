"""Suite-wide scheduling: the longest files start first, the Docker files run one after another on one worker, and
each Docker file holds the engine while it runs."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ENGINE_TURN = Path(__file__).resolve().parents[1] / ".cache" / "docker-tests.lock"
DOCKER_FILES = "tests/docker/"  # every test marked `docker` lives here (tests/architecture checks it)


def _is_marked(item: pytest.Item, name: str) -> bool:
    return item.get_closest_marker(name) is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files in the order that shortens a parallel run: Docker files first (the longest chain, and it waits for the
    engine's base image while the other workers start), then the end-to-end files (seconds to minutes each), then
    the unit tests, which fill the gaps at the end. Each file's tests keep their order."""
    def rank(item: pytest.Item) -> int:
        return 0 if _is_marked(item, "docker") else 1 if _is_marked(item, "e2e") else 2

    files: dict[str, int] = {}
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        files[path] = min(files.get(path, 2), rank(item))
    order = {path: (weight, index) for index, (path, weight) in enumerate(files.items())}
    items.sort(key=lambda item: order[item.nodeid.split("::", 1)[0]])


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "dist", "no") == "loadfile":
        config.option.loadscopereorder = False  # keep the order above, not "most tests first"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With `--dist loadfile`, the Docker files are one unit of work: one worker runs them one after another, rather
    than two workers both holding a Docker file while one of them waits for the engine."""
    if config.option.dist != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class DockerFilesTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return DOCKER_FILES if nodeid.startswith(DOCKER_FILES) else super()._split_scope(nodeid)

    return DockerFilesTogether(config, log)


@pytest.fixture(scope="module", autouse=True)
def docker_engine_turn(request: pytest.FixtureRequest) -> Iterator[None]:
    """Hold an exclusive lock while a file of Docker tests runs: they build and remove images of the same compiled
    stacks, so two of them at once (two pytest runs, or a run without the scheduler above) would remove what the
    other is using."""
    marks = getattr(request.module, "pytestmark", [])
    if not any(mark.name == "docker" for mark in (marks if isinstance(marks, list) else [marks])):
        yield
        return
    ENGINE_TURN.parent.mkdir(parents=True, exist_ok=True)
    with open(ENGINE_TURN, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, after the module's last test
        yield

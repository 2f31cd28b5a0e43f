"""Suite-wide collection rules: how tests are shared out between pytest-xdist workers."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One worker per test file, so a module's costly fixtures (a trained workspace, a started server) are made
    once; every Docker test on one worker, since they share the engine's images and the wheelhouse they build."""
    for item in items:
        group = "docker" if item.get_closest_marker("docker") else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))

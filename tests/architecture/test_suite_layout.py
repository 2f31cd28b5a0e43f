"""The suite's scheduling relies on its layout: every Docker test file lives in tests/docker/ (one worker runs them
one after another, see tests/conftest.py)."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
DOCKER_MARK = re.compile(r"^(pytestmark\s*=.*|\s*@)pytest\.mark\.docker\b", re.MULTILINE)


def test_every_docker_test_file_is_in_tests_docker() -> None:
    marked = {path.relative_to(TESTS).as_posix() for path in TESTS.rglob("test_*.py")
              if DOCKER_MARK.search(path.read_text())}
    assert marked, "no Docker test files found: the scan no longer sees them"
    assert {path for path in marked if not path.startswith("docker/")} == set()

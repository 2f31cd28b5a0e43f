"""The wheels an offline image build is sent: its requirements' closure in the wheelhouse, from the wheels' METADATA."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlspec.pulumi.context import stage_environment
from mlspec.pulumi.wheels import wheel_closure
from tests.pulumi.fake_wheels import make_wheel


def _names(wheels: list[Path] | None) -> set[str]:
    assert wheels is not None
    return {w.name.split("-")[0] for w in wheels}


def _wheelhouse(tmp_path: Path) -> Path:
    house = tmp_path / "house"
    make_wheel(house, "app", requires=("lib[fast]>=1", "plain", "windows-only; sys_platform == 'win32'",
                                       "backport; python_version < '3.10'", "optional; extra == 'more'"),
               extras=("more",))
    make_wheel(house, "lib", requires=("speedups; extra == 'fast'", "core"), extras=("fast",))
    make_wheel(house, "lib", version="2.0", requires=("core",))
    for name in ("core", "plain", "speedups", "windows-only", "backport", "optional", "torch"):
        make_wheel(house, name)
    return house


def test_the_closure_follows_requires_dist_with_extras_and_markers(tmp_path: Path) -> None:
    house = _wheelhouse(tmp_path)
    found = wheel_closure(house, ["# a comment", "", "App>=1.0  # the entry point"])
    # Every version of a reached name goes (pip chooses); an extra asked for brings its own requirements; a marker
    # that holds for some supported Python on Linux counts; Windows-only and unasked-for extras do not.
    assert _names(found) == {"app", "lib", "core", "plain", "speedups", "backport"}
    assert len([w for w in found or [] if w.name.startswith("lib-")]) == 2
    assert _names(wheel_closure(house, ["app[more]"])) == {"app", "lib", "core", "plain", "speedups", "backport",
                                                          "optional"}
    assert _names(wheel_closure(house, ["plain", "missing-here"])) == {"plain"}


def test_a_line_that_is_not_a_plain_requirement_means_the_whole_wheelhouse(tmp_path: Path) -> None:
    house = _wheelhouse(tmp_path)
    assert wheel_closure(house, ["app", "--extra-index-url https://example.invalid/simple"]) is None
    assert wheel_closure(house, ["thing @ https://example.invalid/thing-1.0.tar.gz"]) is None


def test_a_staged_context_holds_only_the_wheels_its_requirements_reach(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    house = _wheelhouse(tmp_path)
    monkeypatch.chdir(tmp_path)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("plain\nlib\n")
    folder = stage_environment("environment-small", requirements, str(house), with_runtime=False)
    assert {p.name.split("-")[0] for p in (folder / "wheels").iterdir()} == {"plain", "lib", "core"}
    # One that cannot be read as requirements alone gets every wheel, as before.
    requirements.write_text("-r other.txt\n")
    folder = stage_environment("environment-small", requirements, str(house), with_runtime=False)
    assert {p.name for p in (folder / "wheels").iterdir()} == {p.name for p in house.iterdir()}

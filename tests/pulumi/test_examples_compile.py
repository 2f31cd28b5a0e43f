"""Every example compiles for each Pulumi target and as plain Kubernetes manifests, as a user would run it, or is
refused at its line, before anything is written, for what the capability table says the target cannot do."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlspec.cli.main import main
from tests.pulumi.conftest import ROOT

EXAMPLES = sorted(p.name for p in (ROOT / "examples").iterdir() if (p / "mlspec.yaml").is_file())
FORMATS = {"docker": ["--target", "docker"], "kubernetes": ["--target", "kubernetes"],
           "manifests": ["--target", "kubernetes", "--format", "manifests", "--registry", "registry.test/team"]}
# What the capability table refuses, and why: schedules where the target has no scheduler (docker) or no fresh data
# for a scheduled run (a batch endpoint on kubernetes).
REFUSED = {
    ("scheduled", "docker"): "a Docker host has no scheduler",
    ("scheduled", "kubernetes"): "a CronJob would score the same rows every time",
    ("scheduled", "manifests"): "a CronJob would score the same rows every time"}


@pytest.mark.parametrize("form", sorted(FORMATS))
@pytest.mark.parametrize("example", EXAMPLES)
def test_the_example_compiles(example: str, form: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["compile", str(ROOT / "examples" / example), *FORMATS[form], "-o", str(out)])
    err = capsys.readouterr().err
    if (example, form) in REFUSED:
        assert code == 2 and REFUSED[example, form] in err and "mlspec.yaml:" in err, err
        assert not out.exists()
    else:
        assert code == 0, err
        assert (out / "README.md" if form == "manifests" else out / "__main__.py").is_file()

"""Every example compiles for each Pulumi target and as plain Kubernetes manifests, as a user would run it; the
kinds that run on the local engine alone are refused at their line, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlspec.cli.main import main
from tests.pulumi.conftest import ROOT

EXAMPLES = sorted(p.name for p in (ROOT / "examples").iterdir() if (p / "mlspec.yaml").is_file())
FORMATS = {"docker": ["--target", "docker"], "kubernetes": ["--target", "kubernetes"],
           "manifests": ["--target", "kubernetes", "--format", "manifests", "--registry", "registry.test/team"]}
LOCAL_ONLY = {"automl": "AutoML jobs run on the local engine only for now",
              "pipeline": "pipelines run on the local engine only for now"}


@pytest.mark.parametrize("form", sorted(FORMATS))
@pytest.mark.parametrize("example", EXAMPLES)
def test_the_example_compiles(example: str, form: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["compile", str(ROOT / "examples" / example), *FORMATS[form], "-o", str(out)])
    err = capsys.readouterr().err
    if example in LOCAL_ONLY:
        assert code == 2 and LOCAL_ONLY[example] in err and "mlspec.yaml:" in err, err
        assert not out.exists()
    else:
        assert code == 0, err
        assert (out / "README.md" if form == "manifests" else out / "__main__.py").is_file()

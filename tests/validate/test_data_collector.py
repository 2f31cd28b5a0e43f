"""An online endpoint's data_collector: defaults and bounds, honoured on the local target and refused at its line
on Docker and Kubernetes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from mlspec.graph import analyze
from mlspec.spec.endpoint import DataCollector

SPEC = """\
kind: Workspace
name: watch
---
kind: Model
name: clf
path: model.joblib
flavor: sklearn
---
kind: Endpoint
name: web
deployments:
  blue: {model: clf@latest}
data_collector:
  sampling_rate: 0.25
  max_record_size: 8Ki
  retention: 2d
"""


def test_defaults_and_units() -> None:
    assert DataCollector() == DataCollector(sampling_rate=0.1, max_record_size=65536, max_records_per_minute=600,
                                            retention=7 * 86400.0)
    assert DataCollector.model_validate({"max_record_size": "8Ki", "retention": "2d"}).retention == 172800.0
    for wrong in ({"sampling_rate": 0}, {"sampling_rate": 1.5}, {"max_records_per_minute": 0}):
        with pytest.raises(ValidationError):
            DataCollector.model_validate(wrong)


def test_honoured_locally_and_refused_at_its_line_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"x")
    spec = tmp_path / "mlspec.yaml"
    spec.write_text(textwrap.dedent(SPEC))
    assert not analyze([spec], "local").diagnostics.errors
    for target in ("docker", "kubernetes"):
        errors = [e for e in analyze([spec], target).diagnostics.errors if "data_collector" in e.path]
        assert [e.span.line for e in errors if e.span] == [13], (target, [e.summary for e in errors])
        assert "use the local target" in errors[0].summary + (errors[0].hint or "")

"""Property tests: no input, however malformed, makes the front half of mlspec raise."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlspec.diagnostics import Diagnostics
from mlspec.graph import analyze
from mlspec.load import parse_yaml
from mlspec.spec import KINDS

FIELDS = ["name", "type", "path", "command", "code", "compute", "environment", "inputs", "outputs", "model",
          "deployments", "traffic", "requirements", "max_nodes", "min_nodes", "resources", "job", "include"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12),
                    st.sampled_from(["cpu", "data:iris", "iris-clf@latest", "m:1", "${{inputs.x}}", "1Gi", "30s"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4)),
                      max_leaves=12)
documents = st.fixed_dictionaries({"kind": st.one_of(st.sampled_from(list(KINDS)), st.text(max_size=8))},
                                  optional={f: values for f in FIELDS})

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text_only_gives_diagnostics(text: str) -> None:
    parse_yaml(text, "fuzz.yaml", Diagnostics())


@SETTINGS
@given(st.lists(documents, min_size=1, max_size=4))
def test_arbitrary_documents_only_give_diagnostics(tmp_path: Path, docs: list) -> None:  # type: ignore[type-arg]
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump_all(docs))
    analysis = analyze([spec])
    assert (analysis.graph is None) == bool(analysis.diagnostics.errors)
    for diagnostic in analysis.diagnostics.items:
        assert diagnostic.summary and (diagnostic.span is None or diagnostic.span.line >= 1)

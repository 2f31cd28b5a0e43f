"""Property tests: no input, however malformed, makes the front half of mlspec raise."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlspec.diagnostics import Diagnostics
from mlspec.graph import Analysis, analyze
from mlspec.load import parse_yaml
from mlspec.spec import KINDS

FIELDS = ["name", "type", "path", "command", "code", "compute", "environment", "inputs", "outputs", "model",
          "deployments", "traffic", "requirements", "max_nodes", "min_nodes", "resources", "job", "include"]
names = st.text(alphabet="abcCPU-_:@${}. \n\té0", max_size=8)  # arbitrary unicode is the text tests' job
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), names,
                    st.sampled_from(["cpu", "data:iris", "model:m@latest", "m:1", "${{inputs.x}}", "1Gi", "30s"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from(FIELDS), inner, max_size=3)),
                      max_leaves=6)
kinds = st.one_of(st.sampled_from(list(KINDS)), names, st.integers())
documents = st.builds(lambda kind, fields: {"kind": kind, **fields}, kinds,
                      st.dictionaries(st.sampled_from(FIELDS), values, max_size=6))

# Fragments that reach YAML's corners: anchors, merges, tags, flow collections, tabs, document markers.
FRAGMENTS = ["kind: Job\n", "kind: Compute\n", "name: t\n", "  ", "\t", "---\n", "...\n", ": ", "- ", "[", "]", "{",
             "}", ",", "&a ", "*a", "<<: *a\n", "!!str ", "!!python/name:os.system ", "'", '"', "#", "\n", "|\n",
             "command: x ${{inputs.y}}\n", "include: [nope.yaml]\n", "\x00", "\ufeff", "type: cluster\n"]
yamlish = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=30).map("".join)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def check(analysis: Analysis) -> None:
    assert (analysis.graph is None) == bool(analysis.diagnostics.errors)
    for diagnostic in analysis.diagnostics.items:
        assert diagnostic.summary and (diagnostic.span is None or diagnostic.span.line >= 1)


@SETTINGS
@given(st.one_of(st.text(max_size=200), yamlish))
def test_arbitrary_text_only_gives_diagnostics(text: str) -> None:
    parse_yaml(text, "fuzz.yaml", Diagnostics())


@SETTINGS
@given(st.one_of(st.text(max_size=200), yamlish))
def test_arbitrary_spec_files_only_give_diagnostics(tmp_path: Path, text: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8", errors="surrogatepass")
    check(analyze([spec]))


@SETTINGS
@given(st.lists(documents, min_size=1, max_size=3))
def test_arbitrary_documents_only_give_diagnostics(tmp_path: Path, docs: list[dict[str, object]]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.dump_all(docs, Dumper=yaml.CSafeDumper))
    check(analyze([spec]))

"""The committed JSON Schema is what `mlspec schema` prints, and every valid spec document satisfies it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from mlspec.cli.main import main
from mlspec.diagnostics import Diagnostics
from mlspec.load import parse_yaml

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schema" / "mlspec.schema.json"
STACKS_SCHEMA = ROOT / "schema" / "mlspec.stacks.schema.json"
STACK_FILES = sorted(ROOT.glob("examples/*/mlspec.stacks.yaml"))
SPECS = sorted({*ROOT.glob("examples/*/*.yaml"), *(ROOT / "tests/corpus/valid").glob("*.yaml"),
                *(ROOT / "tests/corpus/valid/parts").glob("*.yaml")} - set(STACK_FILES))


@pytest.fixture(scope="module")
def validator() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        # jsonschema imports rfc3987_syntax when it is installed, which compiles a grammar for ~1.5 s only to
        # check `format: iri`; mlspec's schema has no formats, so leave it out (if nothing imported it yet).
        if "jsonschema" not in sys.modules:
            patch.setitem(sys.modules, "rfc3987_syntax", None)
        import jsonschema
    schema = json.loads(COMMITTED.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_committed_schema_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(COMMITTED.read_text()), \
        "schema/mlspec.schema.json is stale: run mlspec schema -o schema/mlspec.schema.json"


def test_every_valid_document_satisfies_the_schema(validator: Any) -> None:
    assert {"iris", "torch-digits"} <= {p.parent.name for p in SPECS}
    diagnostics = Diagnostics()
    documents = [d.data for f in SPECS for d in parse_yaml(f.read_text(), str(f), diagnostics)]  # as mlspec reads them
    assert not diagnostics and len(documents) > 25
    for document in documents:
        errors = [e.message for e in validator.iter_errors(document)]
        assert errors == [], document


@pytest.mark.parametrize("document", [
    {"kind": "Job", "name": "t", "command": "x", "comand": "y"},
    {"kind": "Compute", "name": "c", "type": "clustr"},
    {"kind": "Compute", "name": "c", "type": "cluster", "resources": {"memory": "lots"}},
    {"kind": "Data", "name": "d"},
    {"kind": "Enviroment", "name": "e"},
    {"include": ["a.yaml"], "name": "x"},
])
def test_invalid_documents_fail_the_schema(validator: Any, document: dict[str, object]) -> None:
    assert not validator.is_valid(document)


def test_committed_stacks_schema_is_current_and_the_examples_satisfy_it(capsys: pytest.CaptureFixture[str]) -> None:
    import jsonschema

    assert main(["schema", "--stacks"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == json.loads(STACKS_SCHEMA.read_text()), \
        "schema/mlspec.stacks.schema.json is stale: run mlspec schema --stacks -o schema/mlspec.stacks.schema.json"
    validator = jsonschema.Draft202012Validator(schema)
    assert STACK_FILES, "an example keeps a stack file"
    for path in STACK_FILES:
        [document] = parse_yaml(path.read_text(), str(path), Diagnostics())
        assert [e.message for e in validator.iter_errors(document.data)] == [], path
    for wrong in ({"stacks": {"dev": {"targt": "local"}}}, {"stacks": {"dev": {"target": "cloud"}}},
                  {"stacks": {"my stack": {"target": "local"}}}, {"stacks": {}},
                  {"stacks": {"s": {"target": "docker", "docker": {"baseImage": "x"}}}}):
        assert not validator.is_valid(wrong), wrong


def test_committed_plan_schema_is_current_and_versioned(capsys: pytest.CaptureFixture[str]) -> None:
    """The schema of `plan --format json` ships with mlspec; the repository's copy is the same, and it pins the
    version the renderer writes (a change of shape must bump both)."""
    import jsonschema

    from mlspec.render.plan_json import SCHEMA_VERSION

    assert main(["schema", "--plan"]) == 0
    schema = json.loads(capsys.readouterr().out)
    committed = ROOT / "schema" / "mlspec.plan.schema.json"
    assert schema == json.loads(committed.read_text()), \
        "schema/mlspec.plan.schema.json is stale: run mlspec schema --plan -o schema/mlspec.plan.schema.json"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema_version"] == {"const": SCHEMA_VERSION,
                                                      "description": "The version of this document's shape."}

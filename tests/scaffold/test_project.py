"""`mlspec init`: the project validates, and the editor setup checks every document of the spec, not only the first."""

from __future__ import annotations

import fnmatch
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlspec.graph import analyze
from mlspec.scaffold import ScaffoldError, scaffold_project
from mlspec.scaffold.project import project_name
from mlspec.spec.schema import json_schema, stacks_json_schema

KINDS = {"Workspace", "Compute", "Environment", "Data", "Job", "Endpoint"}


@pytest.fixture(scope="module", params=["sklearn", "torch"])
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp(request.param) / "demo"
    name, written = scaffold_project(folder, request.param)
    assert name == "demo" and written.created and not written.replaced
    return folder


def _validator(schema_path: Path) -> Any:
    with pytest.MonkeyPatch.context() as patch:
        if "jsonschema" not in sys.modules:  # skip the slow optional IRI grammar; the schema has no formats
            patch.setitem(sys.modules, "rfc3987_syntax", None)
        import jsonschema
    schema = json.loads(schema_path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _editor_errors(folder: Path, spec_file: str) -> list[str]:
    """What an editor following .vscode/settings.json reports: the schema whose globs match the file, applied to
    every document in it."""
    settings = json.loads((folder / ".vscode" / "settings.json").read_text())
    schemas = [path for path, globs in settings["yaml.schemas"].items()
               if any(fnmatch.fnmatch(spec_file, glob) for glob in globs)]
    assert len(schemas) == 1, f"{spec_file} is mapped to {schemas}"
    validator = _validator(folder / schemas[0])
    documents = list(yaml.safe_load_all((folder / spec_file).read_text()))
    return [f"document {index}: {error.message}" for index, document in enumerate(documents, 1)
            for error in validator.iter_errors(document)]


def test_every_document_validates_against_the_written_schema(project: Path) -> None:
    documents = list(yaml.safe_load_all((project / "mlspec.yaml").read_text()))
    assert {document["kind"] for document in documents} == KINDS
    assert _editor_errors(project, "mlspec.yaml") == []


def test_a_broken_second_document_is_caught_by_the_same_mapping(project: Path, tmp_path: Path) -> None:
    """The settings cover the documents after the first: a modeline would not."""
    copy = tmp_path / "copy"
    for relative in (".vscode/settings.json", "schema/mlspec.schema.json", "mlspec.yaml"):
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        (copy / relative).write_text((project / relative).read_text())
    text = (copy / "mlspec.yaml").read_text()
    assert "max_nodes: 1\n" in text.split("---")[1]
    (copy / "mlspec.yaml").write_text(text.replace("max_nodes: 1\n", "max_nodez: 1\n", 1))
    errors = _editor_errors(copy, "mlspec.yaml")
    assert errors and all(error.startswith("document 2:") for error in errors), errors
    (copy / "other.mlspec.yaml").write_text("kind: Compute\nname: gpu\n---\nkind: Job\nname: x\ncomand: true\n")
    assert any(error.startswith("document 2:") for error in _editor_errors(copy, "other.mlspec.yaml"))


def test_the_project_validates_with_mlspec(project: Path) -> None:
    analysis = analyze([project])
    assert not analysis.diagnostics.errors, [str(d) for d in analysis.diagnostics.errors]
    assert analysis.graph is not None
    kinds = {node_id.split("/")[0] for node_id in analysis.graph.nodes}
    assert kinds == {"compute", "environment", "data", "job", "model", "endpoint"}
    assert analysis.graph.spec.workspace.name == "demo"


def test_the_editor_setup(project: Path) -> None:
    settings = json.loads((project / ".vscode" / "settings.json").read_text())
    assert settings == {"yaml.schemas": {
        "./schema/mlspec.schema.json": ["mlspec.yaml", "mlspec.yml", "*.mlspec.yaml", "*.mlspec.yml"],
        "./schema/mlspec.stacks.schema.json": ["mlspec.stacks.yaml", "mlspec.stacks.yml"]}}
    assert "redhat.vscode-yaml" in json.loads((project / ".vscode" / "extensions.json").read_text())["recommendations"]
    assert json.loads((project / "schema" / "mlspec.schema.json").read_text()) == json_schema()
    assert json.loads((project / "schema" / "mlspec.stacks.schema.json").read_text()) == stacks_json_schema()
    assert "yaml-language-server" not in (project / "mlspec.yaml").read_text()  # a modeline would override it
    assert ".mlspec/" in (project / ".gitignore").read_text().splitlines()


def test_the_request_matches_the_data(project: Path) -> None:
    request = json.loads((project / "request.json").read_text())
    data = next((project / "data").iterdir())
    header = data.read_text().splitlines()[0].split(",")
    if "dataframe_split" in request:
        assert request["dataframe_split"]["columns"] == header[:-1]
    else:
        assert all(len(row) == len(header) - 1 for row in request["inputs"])


def test_existing_files_are_refused_unless_forced(project: Path, tmp_path: Path) -> None:
    template = "torch" if (project / "data" / "digits.csv").exists() else "sklearn"
    folder = tmp_path / "again"
    scaffold_project(folder, template)
    _, written = scaffold_project(folder, template)
    assert not written.created and not written.replaced and len(written.unchanged) == 10
    (folder / "README.md").write_text("mine\n")
    (folder / "src" / "train.py").write_text("mine\n")
    (folder / ".vscode" / "extensions.json").unlink()
    with pytest.raises(ScaffoldError, match=r"2 files .* would be overwritten: src/train.py, README.md"):
        scaffold_project(folder, template)
    assert (folder / "README.md").read_text() == "mine\n"
    assert not (folder / ".vscode" / "extensions.json").exists(), "nothing is written when anything is refused"
    _, written = scaffold_project(folder, template, force=True)
    assert sorted(written.replaced) == ["README.md", "src/train.py"]
    assert written.created == [".vscode/extensions.json"]


def test_names() -> None:
    assert project_name(Path("/tmp/My Project!"), None) == "my-project"
    assert project_name(Path("/tmp/x"), "fraud_2") == "fraud_2"
    with pytest.raises(ScaffoldError, match="--name 'Fraud'"):
        project_name(Path("/tmp/x"), "Fraud")
    with pytest.raises(ScaffoldError, match="pass --name"):
        project_name(Path("/tmp/___"), None)

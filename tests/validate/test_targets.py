"""The capability table: it covers every schema property, and validate refuses or warns at the field's line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from mlspec.graph import analyze
from mlspec.spec import KINDS
from mlspec.spec.capabilities import LEVELS, TABLE, TARGETS, field_rows, row_for
from mlspec.spec.schema import json_schema

ROOT = Path(__file__).resolve().parents[2]


def _models() -> dict[str, type[BaseModel]]:
    """Every spec model reachable from the kinds, by class name (the JSON Schema's $defs names)."""
    found: dict[str, type[BaseModel]] = {}

    def visit(model: type[BaseModel]) -> None:
        if model.__name__ in found:
            return
        found[model.__name__] = model
        for info in model.model_fields.values():
            stack: list[Any] = [info.annotation]
            while stack:
                annotation = stack.pop()
                if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                    visit(annotation)
                stack.extend(getattr(annotation, "__args__", ()))

    for entry in KINDS.values():
        for model in entry.values() if isinstance(entry, dict) else [entry]:
            visit(model)
    return found


def test_every_schema_property_has_a_row_for_every_target() -> None:
    models = _models()
    defs = json_schema()["$defs"]
    assert set(defs) == set(models), "the schema's definitions and the spec models differ"
    missing = [f"{name}.{prop}" for name, schema in defs.items() for prop in schema.get("properties", {})
               if row_for(models[name], prop) is None]
    assert not missing, f"fields with no row in mlspec/spec/capabilities.py: {missing}"


def test_rows_name_only_real_fields_and_explain_every_limit() -> None:
    models = _models()
    for owner, fields in TABLE.items():
        classes = [m for m in models.values() if owner in {c.__name__ for c in m.__mro__}]
        assert classes, f"TABLE names {owner}, which is no spec model"
        for field, row in fields.items():
            assert field == "" or any(field in m.model_fields for m in classes), f"{owner}.{field} is no field"
            for target in TARGETS:
                support = row.on(target)
                assert support.level in LEVELS
                assert support.level == "yes" or support.note, f"{owner}.{field} on {target} needs a note"


def test_children_of_a_refused_field_are_refused_in_the_printed_table() -> None:
    rows = {(r.kind, r.path): r.row for r in field_rows()}
    assert rows[("Endpoint (online)", "deployments.*.autoscale.max_instances")].on("docker").level == "no"
    assert rows[("Endpoint (online)", "deployments.*.autoscale.max_instances")].on("local").level == "yes"
    assert rows[("Compute (attached)", "resources.cpus")].on("local").level == "no"
    assert rows[("Compute (attached)", "resources.cpus")].on("docker").level != "no"
    # A kind honoured in a weaker form leaves its fields their own rows: a batch endpoint's settings reach Docker.
    assert rows[("Endpoint (batch)", "")].on("docker").level == "approx"
    assert rows[("Endpoint (batch)", "mini_batch_size")].on("docker").level == "yes"


def _spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mlspec.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


BASE = """\
kind: Workspace
name: caps
---
kind: Compute
name: cpu
type: cluster
max_nodes: 2
low_priority: true
---
kind: Environment
name: env
requirements: [scikit-learn]
---
kind: Job
name: train
command: python train.py --out ${{outputs.model}}
environment: env
compute: cpu
outputs: {model: {type: model, register_as: clf}}
---
kind: Endpoint
name: web
deployments:
  blue:
    model: clf@latest
    autoscale: {min_instances: 1, max_instances: 3}
---
kind: Endpoint
name: nightly
type: batch
model: clf
input: data:rows
output: {path: out}
---
kind: Data
name: rows
path: rows.csv
"""


def test_refused_fields_are_errors_at_their_line_naming_the_targets_that_honour_them(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("a\n1\n")
    spec = _spec(tmp_path, BASE)
    local = analyze([spec], "local").diagnostics
    assert not local.errors  # autoscale is honoured on the local engine
    warning = next(d for d in local.items if d.severity == "warning")
    assert (warning.span and warning.span.line, warning.path) == (8, "low_priority")
    assert "no preemptible capacity" in warning.summary

    docker = analyze([spec], "docker").diagnostics
    by_path = {d.path: d for d in docker.errors}
    assert set(by_path) == {"deployments.blue.autoscale"}  # the batch endpoint compiles for docker
    refused = by_path["deployments.blue.autoscale"]
    assert refused.span and refused.span.line == 26
    assert refused.hint and "local and kubernetes" in refused.hint
    assert {d.path for d in docker.items if d.severity == "warning"} == {"low_priority"}
    assert analyze([spec]).graph is not None  # no target: the spec itself is valid


def test_a_compute_pinned_to_another_target_is_refused(tmp_path: Path) -> None:
    spec = _spec(tmp_path, """\
        kind: Compute
        name: gpu
        type: cluster
        target: docker
        """)
    [error] = analyze([spec], "local").diagnostics.errors
    assert error.path == "target" and error.span and error.span.line == 4
    assert "--target docker" in (error.hint or "")
    assert not analyze([spec], "docker").diagnostics.errors


def test_conda_packages_that_a_virtualenv_cannot_install_are_refused_locally(tmp_path: Path) -> None:
    (tmp_path / "conda.yaml").write_text("dependencies:\n  - python=3.11\n  - cudatoolkit=11.8\n"
                                         "  - pip\n  - pip: [scikit-learn]\n")
    spec = _spec(tmp_path, """\
        kind: Environment
        name: env
        conda_file: conda.yaml
        """)
    [error] = analyze([spec], "local").diagnostics.errors
    assert "cudatoolkit=11.8" in error.summary and error.span and error.span.line == 3
    (tmp_path / "conda.yaml").write_text("dependencies:\n  - python=3.11\n  - pip\n  - pip: [scikit-learn]\n")
    assert not analyze([spec], "local").diagnostics.errors


def test_the_docker_target_refuses_conda_packages_at_the_conda_file_line(tmp_path: Path) -> None:
    (tmp_path / "conda.yaml").write_text("dependencies:\n  - python=3.10\n  - conda-forge::cudatoolkit=11.8\n"
                                         "  - pip\n  - pip: [scikit-learn]\n")
    spec = _spec(tmp_path, """\
        kind: Environment
        name: env
        conda_file: conda.yaml
        """)
    [error] = analyze([spec], "docker").diagnostics.errors
    assert "conda-forge::cudatoolkit=11.8" in error.summary and "docker target" in error.summary
    assert error.span and error.span.line == 3
    (tmp_path / "conda.yaml").write_text("dependencies:\n  - python=3.10\n  - pip\n  - pip: [scikit-learn]\n")
    assert not analyze([spec], "docker").diagnostics.errors


def _mlspec(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlspec.cli.main", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_validate_and_compile_read_the_table(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("a\n1\n")
    spec = _spec(tmp_path, BASE)
    result = _mlspec("validate", str(spec), "--target", "docker")
    assert result.returncode == 2
    # The file as the command shows it: relative to its working directory when that is shorter.
    assert "mlspec.yaml:26:5: error: Endpoint 'web': deployments.blue.autoscale is not supported on the docker " \
           "target" in result.stderr
    compiled = _mlspec("compile", str(spec), "--target", "docker", "-o", str(tmp_path / "out"))
    assert compiled.returncode == 2 and "autoscale" in compiled.stderr
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_examples_deploy_on_both_targets_without_errors() -> None:
    for example in ("examples/iris", "examples/torch-digits"):
        for target in ("local", "docker"):
            assert not analyze([ROOT / example], target).diagnostics.errors, (example, target)


def test_a_pipeline_deploys_on_every_target() -> None:
    example = ROOT / "examples" / "pipeline"
    for target in ("local", "docker", "kubernetes"):
        assert not analyze([example], target).diagnostics.errors, target


@pytest.mark.parametrize("target", [None, "local"])
def test_targets_command_prints_the_table(target: str | None) -> None:
    args = ["targets", "--json"] + (["--target", target] if target else [])
    result = _mlspec(*args)
    assert result.returncode == 0, result.stderr
    import json

    rows = json.loads(result.stdout)
    expected = [r for r in field_rows() if target is None or r.row.on(target).level != "yes"]  # type: ignore[arg-type]
    assert [(r["kind"], r["field"]) for r in rows] == [(r.kind, r.path) for r in expected]


def test_docs_page_is_the_current_table() -> None:
    result = _mlspec("targets", "--markdown")
    page = ROOT / "docs" / "targets.md"
    assert page.read_text() == result.stdout, "docs/targets.md is stale: mlspec targets --markdown > docs/targets.md"


def test_kubernetes_checks_every_field_of_its_column() -> None:
    analysis = analyze([ROOT / "examples" / "iris"], "kubernetes")
    assert analysis.graph is not None
    assert all(d.severity == "warning" for d in analysis.diagnostics.items)


def test_compiling_for_kubernetes_still_refuses_what_its_column_refuses(tmp_path: Path) -> None:
    spec = tmp_path / "mlspec.yaml"
    spec.write_text("kind: Workspace\nname: w\n---\nkind: Environment\nname: e\nbuild: {context: .}\n")
    analysis = analyze([spec], "kubernetes")
    assert analysis.graph is None
    assert any("build is not supported on the kubernetes target" in d.summary for d in analysis.diagnostics.items)

"""A deployment's scoring script and input schema: the script inside its code folder, the schema a valid JSON Schema."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mlspec.spec.endpoint import SIGNATURE_SCHEMA, BatchEndpoint, CodeConfiguration, Deployment
from mlspec.validate import Declared

if TYPE_CHECKING:
    from mlspec.diagnostics import Diagnostics, Span


class _Locator(Protocol):
    diagnostics: Diagnostics

    def locate(self, item: Declared, path: str, relative: str, want_dir: bool | None = None) -> Path | None: ...


def check_scoring(resolver: _Locator, item: Declared, prefix: str, scored: Deployment | BatchEndpoint) -> None:
    """Locate the code folder (its files become part of the deployment's content hash), check the script lies in it,
    and check the schema file is a JSON Schema; each problem at its own line. `prefix`: where `scored` is in the
    resource ('' for a batch endpoint)."""
    at = f"{prefix}." if prefix else ""
    config = scored.code_configuration
    if config is not None:
        code = resolver.locate(item, f"{at}code_configuration.code", config.code, want_dir=True)
        if code is not None:
            _script(resolver, item, f"{at}code_configuration.scoring_script", code, config)
    schema = scored.input_schema if isinstance(scored, Deployment) else None
    if schema is not None and schema != SIGNATURE_SCHEMA:
        path = f"{at}input_schema"
        located = resolver.locate(item, path, schema, want_dir=False)
        if located is not None:
            problem = schema_problem(located)
            if problem:
                resolver.diagnostics.error(f"{item.kind} '{item.resource.name}': {path}: '{schema}' is not a JSON "
                                           f"Schema: {problem}", _span(item, path), path,
                                           f"write a JSON Schema, or '{SIGNATURE_SCHEMA}' for the model's signature")


def _script(resolver: _Locator, item: Declared, path: str, code: Path, config: CodeConfiguration) -> None:
    script, folder = config.scoring_script, f"'{config.code}'"
    located = Path(os.path.normpath(code / script))
    where = _span(item, path)
    name = f"{item.kind} '{item.resource.name}': {path}"
    if Path(script).is_absolute() or not located.is_relative_to(code):
        resolver.diagnostics.error(f"{name}: '{script}' is outside the code folder {folder}", where, path,
                                   "give the script's path inside code, e.g. score.py")
    elif not located.is_file():
        resolver.diagnostics.error(f"{name}: '{script}' does not exist in the code folder {folder}", where, path)
    elif located.suffix != ".py":
        resolver.diagnostics.error(f"{name}: '{script}' is not a Python file", where, path)


def schema_problem(path: Path) -> str | None:
    """Why the file is not a usable JSON Schema (None: it is one)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"cannot read it as JSON ({error})"
    from jsonschema import SchemaError, validators

    if not isinstance(document, dict | bool):
        return "a schema is a JSON object"
    try:
        validators.validator_for(document).check_schema(document)
    except SchemaError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        return f"at {where}: {error.message}"
    return None


def _span(item: Declared, dotted: str) -> Span | None:
    return item.doc.span(tuple(int(p) if p.isdigit() else p for p in dotted.split(".")))

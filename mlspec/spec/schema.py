"""The JSON Schema of a spec document, for editors (yaml-language-server, VS Code, JetBrains)."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from mlspec.spec import KINDS, Resource

SCHEMA_ID = "https://mlspec.dev/schema/mlspec.schema.json"
STACKS_SCHEMA_ID = "https://mlspec.dev/schema/mlspec.stacks.schema.json"


def json_schema() -> dict[str, Any]:
    """One schema for any document: each kind (and type variant) is a branch selected by `kind`/`type`."""
    models: list[type[Resource]] = []
    for entry in KINDS.values():
        models.extend(entry.values() if isinstance(entry, dict) else [entry])
    _, top = models_json_schema([(m, "validation") for m in models], ref_template="#/$defs/{model}")
    defs = top["$defs"]
    branches: list[dict[str, Any]] = []
    for kind, entry in KINDS.items():
        variants = entry.values() if isinstance(entry, dict) else [entry]
        for model in variants:
            ref = {"$ref": f"#/$defs/{model.__name__}"}
            condition: dict[str, Any] = {"properties": {"kind": {"const": kind}}, "required": ["kind"]}
            if isinstance(entry, dict):
                type_name = model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
                default = model.model_fields["type"].default
                if default is None or str(default) == "PydanticUndefined":
                    condition["properties"]["type"] = {"const": type_name}
                    condition["required"].append("type")
                else:  # the default variant also matches documents without `type`
                    condition["properties"]["type"] = {"const": type_name}
            branches.append({"if": condition, "then": ref})
        if isinstance(entry, dict):
            branches.append({"if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                             "then": {"properties": {"type": {"enum": list(entry)}}}})
    include = {"type": "object", "properties": {"include": {"anyOf": [
        {"type": "string"}, {"type": "array", "items": {"type": "string"}}]}},
        "required": ["include"], "additionalProperties": False}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "mlspec resource",
        "description": "One mlspec document: a Workspace, Compute, Environment, Data, Job, Model or Endpoint.",
        "type": "object",
        "anyOf": [
            include,
            {"required": ["kind"], "properties": {"kind": {"enum": list(KINDS)}}, "allOf": branches},
        ],
        "$defs": defs,
    }


def stacks_json_schema() -> dict[str, Any]:
    """The schema of the stack file, `mlspec.stacks.yaml`."""
    from mlspec.spec.stacks import STACK_NAME, STACKS_FILES, StacksFile

    schema = StacksFile.model_json_schema(ref_template="#/$defs/{model}")
    schema["properties"]["stacks"]["propertyNames"] = {"pattern": STACK_NAME.pattern}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": STACKS_SCHEMA_ID,
            "title": "mlspec stacks",
            "description": f"{STACKS_FILES[0]}: the stacks of the spec beside it, each a target and its settings.",
            **{k: v for k, v in schema.items() if k not in ("title", "description")}}

"""Turns pydantic validation errors into diagnostics on the exact key or value the user wrote."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from mlspec.diagnostics import Diagnostic, did_you_mean
from mlspec.load.yaml_source import Document, Path


def _doc_path(data: Any, loc: tuple[Any, ...], names_field: bool) -> Path:
    """The part of a pydantic `loc` that exists in the document (drops union branch tags).

    `names_field`: the error is about a missing or extra field, whose name is kept at the end.
    """
    path: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            path.append(part)
            node = node[part]
        elif names_field and part is loc[-1] and isinstance(part, str):
            path.append(part)
    return tuple(path)


def _model_at(model: type[BaseModel], path: Path) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at `path`, for did-you-mean on its field names."""
    current: Any = model
    for part in path:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            current = _element_model(current)  # the part is a dict key or list index
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _unwrap(field.annotation)
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Annotated/union wrappers down to the one model class inside, if there is one."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if len(models) == 1 else annotation
    return annotation


def _element_model(annotation: Any) -> Any:
    """For dict[str, M] / list[M]: M."""
    args = typing.get_args(_unwrap(annotation))
    return _unwrap(args[-1]) if args else None


def _label(data: dict[str, Any]) -> str:
    kind = data.get("kind", "resource")
    name = data.get("name")
    return f"{kind} '{name}'" if isinstance(name, str) else str(kind)


def _friendly(error: dict[str, Any], value: Any) -> str:
    kind = error["type"]
    if kind == "string_pattern_mismatch":
        return f"'{value}' is not a valid name: use lower-case letters, digits, '-' and '_' (at most 63)"
    if kind == "literal_error":
        return f"'{value}' is not allowed; expected {error['ctx']['expected']}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of fields, got {type(value).__name__} {value!r}"
    if kind == "list_type":
        return f"expected a list, got {type(value).__name__} {value!r}"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def to_diagnostics(exc: ValidationError, model: type[BaseModel], doc: Document,
                   label: str | None = None) -> list[Diagnostic]:
    """`label` names what the document is in messages (default: its kind and name)."""
    data = doc.data
    label = label or _label(data)
    grouped: dict[Path, list[dict[str, Any]]] = {}
    for error in exc.errors(include_url=False):
        names_field = error["type"] in ("missing", "extra_forbidden")
        grouped.setdefault(_doc_path(data, tuple(error["loc"]), names_field), []).append(dict(error))
    misspelt = _misspelt_required(grouped, model)
    out: list[Diagnostic] = []
    for path, errors in grouped.items():
        if path in misspelt and all(e["type"] == "missing" for e in errors):
            continue  # `comand:` for `command:` is one mistake: the unknown field's did-you-mean says it
        deeper = any(other[: len(path)] == path and len(other) > len(path) for other in grouped)
        if deeper and all(e["type"].endswith("_type") or e["type"].endswith("_parsing") for e in errors):
            continue  # a union's scalar branches failed because the value is a mapping: the deeper error says why
        if len(errors) > 1 and all(e["type"].endswith("_type") for e in errors):
            out.append(_wrong_type(errors, path, doc, label))
        else:
            out.append(_one(_pick(errors), path, model, doc, label))
    return out


def _misspelt_required(grouped: dict[Path, list[dict[str, Any]]], model: type[BaseModel]) -> set[Path]:
    """Paths of missing fields that an unknown field beside them is a misspelling of."""
    found: set[Path] = set()
    for path, errors in grouped.items():
        if path and any(e["type"] == "extra_forbidden" for e in errors):
            owner = _model_at(model, path[:-1])
            guess = did_you_mean(str(path[-1]), owner.model_fields) if owner else None
            if guess:
                found.add((*path[:-1], guess))
    return found


_TYPE_NAMES = {"bool": "a boolean", "int": "an integer", "float": "a number", "str": "text"}


def _wrong_type(errors: list[dict[str, Any]], path: Path, doc: Document, label: str) -> Diagnostic:
    """A value that matched no branch of a union: list what would have been accepted."""
    accepted = dict.fromkeys(_TYPE_NAMES.get(str(e["loc"][-1]), "a mapping") for e in errors)
    dotted = ".".join(map(str, path))
    value = _value_at(doc.data, path)
    return Diagnostic(f"{label}: {dotted}: got {type(value).__name__} {value!r}; expected {' or '.join(accepted)}",
                      doc.span(path), dotted)


def _pick(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """Of several union-branch errors for one value, the one users can act on."""
    for preferred in ("extra_forbidden", "missing", "value_error", "literal_error"):
        for error in errors:
            if error["type"] == preferred:
                return error
    return errors[0]


def _one(error: dict[str, Any], path: Path, model: type[BaseModel], doc: Document, label: str) -> Diagnostic:
    dotted = ".".join(map(str, path))
    kind = error["type"]
    if kind == "extra_forbidden":
        field = str(path[-1])
        owner = _model_at(model, path[:-1])
        guess = did_you_mean(field, owner.model_fields) if owner else None
        where = f" in '{'.'.join(map(str, path[:-1]))}'" if len(path) > 1 else ""
        return Diagnostic(f"{label} has no field '{field}'{where}", doc.key_span(path), dotted,
                          f"did you mean '{guess}'?" if guess else None)
    if kind == "missing":
        where = f" in '{'.'.join(map(str, path[:-1]))}'" if len(path) > 1 else ""
        return Diagnostic(f"{label} is missing required field '{path[-1]}'{where}",
                          doc.key_span(path[:-1]) if path[:-1] else doc.span(()), dotted)
    value = _value_at(doc.data, path)
    message = _friendly(error, value)
    if isinstance(value, dict):  # a model-level check: point at the field its message starts with
        first = message.split(" ", 1)[0]
        owner = _model_at(model, path)
        if owner and first in owner.model_fields and first in value:
            path = (*path, first)
    span = doc.key_span(path) if path and isinstance(value, dict) else doc.span(path)
    return Diagnostic(f"{label}: {dotted + ': ' if dotted else ''}{message}", span, dotted, _hint(error, value))


def _hint(error: dict[str, Any], value: Any) -> str | None:
    if error["type"] == "literal_error" and isinstance(value, str):
        expected = [part.strip().strip("'") for part in str(error["ctx"]["expected"]).replace(" or ", ",").split(",")]
        guess = did_you_mean(value, [e for e in expected if e])
        return f"did you mean '{guess}'?" if guess else None
    return None


def _value_at(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data

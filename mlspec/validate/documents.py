"""Validate stage: each document becomes a typed resource, or diagnostics saying exactly why not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from mlspec.diagnostics import Diagnostic, Diagnostics, did_you_mean
from mlspec.load.yaml_source import Document
from mlspec.spec import DEFAULT_TYPES, KINDS, Resource
from mlspec.validate.pydantic_errors import to_diagnostics


@dataclass(frozen=True, slots=True)
class Declared:
    """A validated resource and the document it came from (for spans in later stages)."""

    resource: Resource
    doc: Document

    @property
    def kind(self) -> str:
        return self.resource.kind  # type: ignore[attr-defined]

    @property
    def id(self) -> str:
        return f"{self.kind.lower()}/{self.resource.name}"


def model_for(doc: Document, diagnostics: Diagnostics) -> type[Resource] | None:
    """The model class of a document from its `kind` (and `type`), or a diagnostic with a suggestion."""
    data: dict[str, Any] = doc.data
    kind = data.get("kind")
    if kind is None:
        guess = did_you_mean("kind", [k for k in data if isinstance(k, str)])
        hint = f"did you mean 'kind' instead of '{guess}'?" if guess and guess != "kind" else \
            f"add 'kind:' with one of {', '.join(KINDS)}"
        diagnostics.error("document has no 'kind'", doc.key_span((guess,)) if guess else doc.span(()), "kind", hint)
        return None
    if not isinstance(kind, str) or kind not in KINDS:
        guess = did_you_mean(str(kind), KINDS) or next((k for k in KINDS if k.lower() == str(kind).lower()), None)
        diagnostics.error(f"unknown kind '{kind}'", doc.span(("kind",)), "kind",
                          f"did you mean '{guess}'?" if guess else f"use one of {', '.join(KINDS)}")
        return None
    entry = KINDS[kind]
    if not isinstance(entry, dict):
        return entry
    variant = data.get("type", DEFAULT_TYPES[kind])
    if not isinstance(variant, str) or variant not in entry:
        guess = did_you_mean(str(variant), entry)
        diagnostics.error(f"{kind} type '{variant}' is not one of {', '.join(entry)}", doc.span(("type",)), "type",
                          f"did you mean '{guess}'?" if guess else None)
        return None
    return entry[variant]


@dataclass
class Validated:
    declared: list[Declared]
    broken: dict[str, Document]  # ids of documents that failed validation: references to them are not errors too


def _would_declare(data: dict[str, Any]) -> list[str]:
    """Ids an invalid document would have declared: its own, and a job's models to register, so references to
    them are not reported a second time as undeclared."""
    if not isinstance(data.get("name"), str):
        return []
    ids = [f"{str(data['kind']).lower()}/{data['name']}"]
    outputs = data.get("outputs") if data.get("kind") == "Job" else None
    if isinstance(outputs, dict):
        ids += [f"model/{out['register_as']}" for out in outputs.values()
                if isinstance(out, dict) and isinstance(out.get("register_as"), str)]
    return ids


def validate_documents(documents: list[Document], diagnostics: Diagnostics) -> Validated:
    """Validate every document; collect all errors; reject names declared twice within a kind."""
    declared: list[Declared] = []
    broken: dict[str, Document] = {}
    first: dict[str, Declared] = {}
    for doc in documents:
        if not isinstance(doc.data, dict):
            diagnostics.error(f"a spec document is a mapping with 'kind' and 'name', not a {type(doc.data).__name__}",
                              doc.span(()))
            continue
        model = model_for(doc, diagnostics)
        if model is None:
            if doc.data.get("kind") in KINDS:
                broken.update(dict.fromkeys(_would_declare(doc.data), doc))
            continue
        try:
            resource = model.model_validate(doc.data)
        except ValidationError as exc:
            diagnostics.extend(to_diagnostics(exc, model, doc))
            broken.update(dict.fromkeys(_would_declare(doc.data), doc))
            continue
        item = Declared(resource, doc)
        if item.id in first:
            earlier = first[item.id].doc.span(("name",))
            diagnostics.add(Diagnostic(
                f"{item.kind} '{resource.name}' is declared twice (first at {earlier})",
                doc.span(("name",)), "name", "rename one of them"))
            continue
        first[item.id] = item
        declared.append(item)
    workspaces = [d for d in declared if d.kind == "Workspace"]
    for extra in workspaces[1:]:
        diagnostics.error(f"only one Workspace per spec (first is '{workspaces[0].resource.name}' "
                          f"at {workspaces[0].doc.span(())})", extra.doc.span(("kind",)), "kind")
    return Validated(declared, broken)

"""YAML to plain values plus a source span for every node, with YAML 1.2 scalars and no duplicate keys."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from mlspec.diagnostics import Diagnostics, Span
from mlspec.load.yaml_errors import syntax_error

Path = tuple[str | int, ...]

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader keeps node marks and is ~10x faster

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_RESOLVER = yaml.resolver.Resolver()  # YAML 1.1's implicit tags: a different tag on a node was written explicitly
_KNOWN_TAGS = {_STR, _MERGE, "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:null",
               "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
               "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary", "tag:yaml.org,2002:value"}

# YAML 1.2 core schema: only these plain scalars are not strings. So `no`, `on`, `yes` stay names,
# `2024-01-01` stays a string, and `0755` is not an octal surprise.
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_INT_BASE = re.compile(r"^0(?:o[0-7]+|x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_SPECIAL_FLOAT = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf"), ".nan": float("nan"),
                  ".Inf": float("inf"), "-.Inf": float("-inf"), ".NaN": float("nan"), ".INF": float("inf")}


def plain_scalar(text: str) -> Any:
    """The value of an unquoted YAML scalar under the YAML 1.2 core schema."""
    if _NULL.match(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.match(text):
        return int(text)
    if _INT_BASE.match(text):
        return int(text[2:], 8 if text[1] == "o" else 16)
    if _FLOAT.match(text):
        return float(text)
    if text in _SPECIAL_FLOAT:
        return _SPECIAL_FLOAT[text]
    return text


@dataclass(slots=True)
class Document:
    """One YAML document (or DSL declaration): its values and where each came from."""

    file: str
    data: Any
    spans: dict[Path, Span] = field(default_factory=dict)  # path -> span of the value
    key_spans: dict[Path, Span] = field(default_factory=dict)  # path -> span of the mapping key

    def span(self, path: Path) -> Span | None:
        """The span of the value at `path`, or of its closest ancestor that exists."""
        while True:
            if path in self.spans:
                return self.spans[path]
            if not path:
                return None
            path = path[:-1]

    def key_span(self, path: Path) -> Span | None:
        return self.key_spans.get(path) or self.span(path)


class _Builder:
    def __init__(self, file: str, diagnostics: Diagnostics):
        self.file = file
        self.diagnostics = diagnostics

    def span(self, node: yaml.Node) -> Span:
        start, end = node.start_mark, node.end_mark
        return Span(self.file, start.line + 1, start.column + 1, end.line + 1, end.column + 1)

    def build(self, node: yaml.Node, path: Path, doc: Document) -> Any:
        doc.spans[path] = self.span(node)
        if node.tag not in _KNOWN_TAGS:  # on any node: `!!python/object/apply:os.system [...]` is a sequence
            self.diagnostics.error(f"unsupported YAML tag '{node.tag}'", self.span(node), hint="remove the tag")
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, doc)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), doc) for i, item in enumerate(node.value)]
        return self.scalar(node)

    def scalar(self, node: yaml.Node) -> Any:
        if getattr(node, "style", None):  # quoted or block scalars are strings (plain is None, or '' from libyaml)
            return node.value
        if node.tag == _STR and _RESOLVER.resolve(yaml.ScalarNode, node.value, (True, False)) != _STR:
            return node.value  # an explicit !!str keeps the text
        return plain_scalar(node.value)

    def mapping(self, node: yaml.MappingNode, path: Path, doc: Document) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_seen: dict[str, Span] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged = self.build(value_node, (*path, "<<"), doc)
                for item in merged if isinstance(merged, list) else [merged]:
                    if isinstance(item, dict):
                        for k, v in item.items():
                            out.setdefault(k, v)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.diagnostics.error("a mapping key must be a plain name", self.span(key_node))
                continue
            key = key_node.value if key_node.style else plain_scalar(key_node.value)
            if key is None or isinstance(key, bool):
                self.diagnostics.error(f"'{key_node.value}' cannot be used as a key", self.span(key_node),
                                       hint="quote it if you mean the text")
                continue
            key = str(key)
            key_span = self.span(key_node)
            if key in first_seen:
                self.diagnostics.error(
                    f"duplicate key '{key}' (first given on line {first_seen[key].line})",
                    key_span, "/".join(map(str, (*path, key))), hint="remove one of them",
                )
                continue
            first_seen[key] = key_span
            child = (*path, key)
            doc.key_spans[child] = key_span
            out[key] = self.build(value_node, child, doc)
        return out


def parse_yaml(text: str, file: str, diagnostics: Diagnostics) -> list[Document]:
    """Every document in a YAML text, with spans; syntax errors become diagnostics."""
    documents: list[Document] = []
    builder = _Builder(file, diagnostics)
    try:
        for node in yaml.compose_all(text, Loader=_Loader):
            if node is None:
                continue
            doc = Document(file, None)
            doc.data = builder.build(node, (), doc)
            if doc.data is not None:  # an empty document between two `---`
                documents.append(doc)
    except yaml.MarkedYAMLError as exc:
        diagnostics.add(syntax_error(exc, text, file))
    except yaml.YAMLError as exc:  # e.g. a reader error on bad bytes
        diagnostics.error(f"YAML error: {exc}", Span(file, 1, 1, 1, 2))
    return documents

"""Runs a Python DSL spec file and collects its declarations as positioned documents."""

from __future__ import annotations

import ast
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any

from mlspec.diagnostics import Diagnostics, Span
from mlspec.load.yaml_source import Document

# Declarations made while a DSL file runs; None when no file is being loaded (plain scripting use).
_collecting: list[Document] | None = None
_trees: dict[str, ast.Module] = {}
_shown: dict[str, str] = {}  # absolute file -> path as the user gave it


def declare(kind: str, fields: dict[str, Any], depth: int = 2) -> Document:
    """Record a declaration made by the DSL; spans come from the caller's source code."""
    frame = sys._getframe(depth)
    file = frame.f_code.co_filename
    data = {"kind": kind, **fields}
    doc = Document(_shown.get(file, file), data)
    call = _find_call(file, frame.f_lineno)
    if call is not None:
        _record_spans(doc, call, doc.file)
    else:
        doc.spans[()] = Span(doc.file, frame.f_lineno, 1, frame.f_lineno, 2)
    if _collecting is not None:
        _collecting.append(doc)
    return doc



def run_python_spec(path: Path, shown: str, diagnostics: Diagnostics) -> list[Document]:
    """Execute a DSL file; its exceptions become diagnostics pointing at the failing line."""
    global _collecting
    outer, _collecting = _collecting, []
    _shown[str(path.resolve())] = shown
    _shown[str(path)] = shown
    _trees.pop(str(path.resolve()), None)  # the file may have changed since it was last parsed
    collected = _collecting
    try:
        runpy.run_path(str(path.resolve()), run_name="__mlspec__")
    except SystemExit:
        pass
    except BaseException as exc:  # user code: report, never crash the CLI
        line = _failing_line(exc, path)
        span = Span(shown, line, 1, line, 2) if line else Span(shown, 1, 1, 1, 2)
        diagnostics.error(f"error running the spec: {type(exc).__name__}: {exc}", span)
    finally:
        _collecting = outer
    return collected


def _failing_line(exc: BaseException, path: Path) -> int | None:
    if isinstance(exc, SyntaxError) and exc.lineno:
        return exc.lineno
    resolved = str(path.resolve())
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == resolved:
            line = frame.lineno
    return line


def _find_call(file: str, line: int) -> ast.Call | None:
    tree = _trees.get(file)
    if tree is None:
        try:
            tree = _trees[file] = ast.parse(Path(file).read_text(encoding="utf-8"))
        except (OSError, SyntaxError):
            return None
    best: ast.Call | None = None
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        on_line = node.lineno <= line <= (node.end_lineno or node.lineno)
        if on_line and (best is None or node.lineno >= best.lineno):  # the innermost call on that line
            best = node
    return best


def _span(node: ast.AST, file: str) -> Span:
    return Span(file, node.lineno, node.col_offset + 1,  # type: ignore[attr-defined]
                node.end_lineno or node.lineno, (node.end_col_offset or node.col_offset) + 1)  # type: ignore[attr-defined]


def _record_spans(doc: Document, call: ast.Call, file: str) -> None:
    doc.spans[()] = _span(call, file)
    for keyword in call.keywords:
        if keyword.arg is None:
            continue
        path = (keyword.arg,)
        doc.key_spans[path] = Span(file, keyword.lineno, keyword.col_offset + 1,
                                   keyword.lineno, keyword.col_offset + 1 + len(keyword.arg))
        _record_value(doc, keyword.value, path, file)


def _record_value(doc: Document, node: ast.expr, path: tuple[str | int, ...], file: str) -> None:
    doc.spans[path] = _span(node, file)
    if isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                child = (*path, key.value)
                doc.key_spans[child] = _span(key, file)
                _record_value(doc, value, child, file)
    elif isinstance(node, (ast.List, ast.Tuple)):
        for i, item in enumerate(node.elts):
            _record_value(doc, item, (*path, i), file)

"""Diagnostics as text: `file:line:col: error: summary`, the offending line, a caret and a hint."""

from __future__ import annotations

from functools import lru_cache

from mlspec.diagnostics import Diagnostic
from mlspec.render.style import Style


@lru_cache(maxsize=64)
def _lines(file: str) -> list[str]:
    try:
        with open(file, encoding="utf-8", errors="replace") as handle:
            return handle.read().splitlines()
    except OSError:
        return []


def render_one(d: Diagnostic, style: Style) -> str:
    location = f"{d.span}: " if d.span else ""
    head = f"{style(location, 'bold')}{style(d.severity + ':', 'red' if d.severity == 'error' else 'yellow', 'bold')} "
    out = [head + style(d.summary, "bold")]
    lines = _lines(d.span.file) if d.span else []
    if d.span and 0 < d.span.line <= len(lines):
        text = lines[d.span.line - 1].replace("\t", " ")
        gutter = " " * len(str(d.span.line))
        width = (d.span.end_column - d.span.column) if d.span.end_line == d.span.line else len(text) - d.span.column + 1
        width = max(1, min(width, len(text) - d.span.column + 1))
        caret = " " * (d.span.column - 1) + "^" * width
        out.append(f"{gutter} |")
        out.append(f"{d.span.line} | {text}")
        out.append(f"{gutter} | {style(caret, 'red')}" + (f" {style(d.hint, 'cyan')}" if d.hint else ""))
    elif d.hint:
        out.append(f"  = {style(d.hint, 'cyan')}")
    return "\n".join(out)


def render(diagnostics: list[Diagnostic], style: Style, files: int) -> str:
    errors = sum(d.severity == "error" for d in diagnostics)
    body = "\n".join(render_one(d, style) for d in diagnostics)
    in_files = len({d.span.file for d in diagnostics if d.span}) or files
    warnings = len(diagnostics) - errors
    counts = [f"{errors} error{'s' if errors != 1 else ''}"] if errors or not warnings else []
    counts += [f"{warnings} warning{'s' if warnings != 1 else ''}"] if warnings else []
    summary = f"{' and '.join(counts)} in {in_files} file{'s' if in_files != 1 else ''}"
    return f"{body}\n{style(summary, 'red' if errors else 'yellow', 'bold')}" if body else summary

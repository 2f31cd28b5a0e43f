"""Diagnostics as text: `file:line:col: error: summary`, the offending line, a caret and a hint."""

from __future__ import annotations

from functools import lru_cache

from mlspec.diagnostics import Diagnostic, Span
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
    snippet = _snippet(d.span, d.hint, "red", style) if d.span else []
    out += snippet
    if d.hint and not snippet:
        out.append(f"  = {style(d.hint, 'cyan')}")
    for span, note in d.notes:
        out.append(f"{style(f'{span}: ', 'bold')}{style('note:', 'cyan', 'bold')} {note}")
        out += _snippet(span, None, "cyan", style)
    return "\n".join(out)


def _snippet(span: Span, hint: str | None, colour: str, style: Style) -> list[str]:
    """The line a span starts on, with a caret under the span and the hint after it; [] when unreadable."""
    lines = _lines(span.file)
    if not 0 < span.line <= len(lines):
        return []
    text = lines[span.line - 1].replace("\t", " ")
    gutter = " " * len(str(span.line))
    width = (span.end_column - span.column) if span.end_line == span.line else len(text) - span.column + 1
    width = max(1, min(width, len(text) - span.column + 1))
    caret = " " * (span.column - 1) + "^" * width
    return [f"{gutter} |", f"{span.line} | {text}",
            f"{gutter} | {style(caret, colour)}" + (f" {style(hint, 'cyan')}" if hint else "")]


def render(diagnostics: list[Diagnostic], style: Style, files: int) -> str:
    errors = sum(d.severity == "error" for d in diagnostics)
    body = "\n".join(render_one(d, style) for d in diagnostics)
    in_files = len({d.span.file for d in diagnostics if d.span}) or files
    warnings = len(diagnostics) - errors
    counted = f"{errors} error{'s' if errors != 1 else ''}"
    if warnings:
        counted += f" and {warnings} warning{'s' if warnings != 1 else ''}"
    summary = f"{counted} in {in_files} file{'s' if in_files != 1 else ''}"
    return f"{body}\n{style(summary, 'red', 'bold')}" if body else summary

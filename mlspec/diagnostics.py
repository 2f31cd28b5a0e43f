"""Diagnostics: user-facing errors with source spans, collected rather than raised one at a time."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file; lines and columns are 1-based, the end is exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in the user's spec, precise enough to fix without reading mlspec's code."""

    summary: str
    span: Span | None = None
    path: str = ""  # dotted field path inside the resource, e.g. "deployments.blue.model"
    hint: str | None = None  # shown under the caret: "did you mean 'command'?"
    severity: Severity = "error"
    # Other places that explain this one, e.g. where an unclosed bracket opened: (span, what it is).
    notes: tuple[tuple[Span, str], ...] = ()

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"severity": self.severity, "summary": self.summary, "path": self.path}
        if self.span:
            out.update(file=self.span.file, line=self.span.line, column=self.span.column)
        if self.hint:
            out["hint"] = self.hint
        if self.notes:
            out["notes"] = [{"file": s.file, "line": s.line, "column": s.column, "note": text}
                            for s, text in self.notes]
        return out


@dataclass
class Diagnostics:
    """An ordered bag of diagnostics that every stage appends to."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, diagnostic: Diagnostic) -> None:
        self.items.append(diagnostic)

    def error(self, summary: str, span: Span | None = None, path: str = "", hint: str | None = None) -> None:
        self.items.append(Diagnostic(summary, span, path, hint))

    def extend(self, items: Iterable[Diagnostic]) -> None:
        self.items.extend(items)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def sorted(self) -> list[Diagnostic]:
        def key(d: Diagnostic) -> tuple[str, int, int]:
            return (d.span.file, d.span.line, d.span.column) if d.span else ("", 0, 0)

        return sorted(self.items, key=key)


class SpecError(Exception):
    """Raised by API entry points when a spec has errors; carries every diagnostic found."""

    def __init__(self, diagnostics: Diagnostics):
        self.diagnostics = diagnostics
        first = diagnostics.sorted()[0] if diagnostics else None
        detail = f"; first: {first.span}: {first.summary}" if first else ""
        super().__init__(f"{len(diagnostics)} error(s) in spec{detail}")


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt word, or None when nothing is close enough."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None

"""YAML syntax errors as diagnostics: where the construct opened, where it broke, and a hint that fits."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from mlspec.diagnostics import Diagnostic, Span

_CLOSERS = {"flow mapping": ("{", "}"), "flow sequence": ("[", "]")}


@dataclass(frozen=True, slots=True)
class _Mark:
    line: int  # 0-based, as PyYAML counts
    column: int


def syntax_error(exc: yaml.MarkedYAMLError, text: str, file: str) -> Diagnostic:
    """One diagnostic for a YAML syntax error, the same whichever of libyaml or PyYAML parsed the text."""
    lines = text.splitlines()
    problem = _mark(exc.problem_mark)
    opened = _mark(exc.context_mark)
    what = (exc.problem or exc.context or "invalid YAML").strip()
    context = (exc.context or "").removeprefix("while ").strip()
    flow = next((name for name in _CLOSERS if name in context), None)

    def span(mark: _Mark) -> Span:
        return Span(file, mark.line + 1, mark.column + 1, mark.line + 1, mark.column + 2)

    def line(mark: _Mark | None) -> str:
        return lines[mark.line] if mark is not None and 0 <= mark.line < len(lines) else ""

    if problem is None:
        problem, opened = opened, None
    if problem is None:
        return Diagnostic(f"YAML syntax error: {what}", Span(file, 1, 1, 1, 2))
    broken = line(problem)
    summary, hint, note = f"YAML syntax error: {what}", None, None
    if "\t" in broken[: len(broken) - len(broken.lstrip())] or "'\\t'" in what:
        summary, hint = "YAML syntax error: a tab in the indentation", "indent with spaces, not tabs"
        opened = None  # the "token" that broke is the tab itself
    elif "quoted scalar" in context and opened is not None:
        # Unclosed: the fix belongs where it opened; where YAML gave up is often the end of the file.
        quote = line(opened)[opened.column : opened.column + 1] or '"'
        summary = f"YAML syntax error: the {quote} quote opened here is never closed"
        hint = f"close it with {quote} at the end of the value"
        problem, opened = opened, problem
        note = f"YAML read on to {_where(opened, lines)} looking for the closing {quote}"
    elif flow is not None and opened is not None:
        opener, closer = _CLOSERS[flow]
        summary = f"YAML syntax error: the '{opener}' opened here is not closed"
        hint = f"add '{closer}' where the {flow.split()[1]} ends, or ',' between its items"
        problem, opened = opened, problem
        at_end = _where(opened, lines) != "here"
        note = f"YAML expected ',' or '{closer}' " + ("before the end of the file" if at_end else "here")
    elif "simple key" in context and opened is not None:
        # YAML noticed only on the next line; the key without ': ' is where the construct opened.
        key = line(opened).strip()
        problem, opened = opened, problem
        summary = f"YAML syntax error: '{key}' is neither a key with ': ' nor part of a value"
        hint = "write a key as `name: value`, with a space after the colon"
        note = "YAML was still looking for the ':' here"
    elif "mapping values are not allowed" in what:
        above = _previous_content(lines, problem.line)
        if above is not None and _indent(broken) > _indent(lines[above]) and ":" in lines[above] \
                and not lines[above].rstrip().endswith(":"):
            summary = "YAML syntax error: this line is indented more than the key above it"
            hint = f"indent it like line {above + 1} ({_indent(lines[above])} spaces)"
            opened = _Mark(above, _indent(lines[above]))
            note = "the key above it, whose value is already complete"
        else:
            summary = "YAML syntax error: a ': ' inside a value"
            hint = "quote the value (\"...\") when it contains ': '"
    elif "block mapping" in context or "block end" in what:
        if broken.lstrip().startswith("- "):
            summary = "YAML syntax error: a list item where a key was expected"
            hint = "indent the list under the key it belongs to"
        else:
            summary = "YAML syntax error: this line's indentation matches no key above it"
            levels = sorted({_indent(text) for text in lines[: problem.line] if text.strip()
                             and not text.lstrip().startswith("#")})
            hint = f"indent it like its sibling keys ({' or '.join(map(str, levels[-3:]))} spaces)"
        note = "the mapping it should belong to starts here"
    elif opened is not None:
        note = f"{context or 'the construct'} started here"
    notes = ((span(opened), note),) if opened is not None and note and opened != problem else ()
    return Diagnostic(summary, span(problem), hint=hint, notes=notes)


def _where(mark: _Mark | None, lines: list[str]) -> str:
    return "here" if mark is not None and mark.line < len(lines) else "the end of the file"


def _mark(mark: yaml.Mark | None) -> _Mark | None:
    return _Mark(mark.line, mark.column) if mark is not None else None


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def _previous_content(lines: list[str], index: int) -> int | None:
    for before in range(index - 1, -1, -1):
        stripped = lines[before].strip()
        if stripped and not stripped.startswith("#"):
            return before
    return None

"""Placeholders at validate time: every `${{...}}` a job's command holds, parsed as strictly as the runner will."""

from __future__ import annotations

from mlspec.diagnostics import Diagnostic, Diagnostics, Span, did_you_mean
from mlspec.load.yaml_source import Document
from mlspec.spec.job import PLACEHOLDER_SCOPES, SEARCH_SPACE_SCOPE, Placeholder, placeholders
from mlspec.spec.sweep import AnyJob, SweepJob, command_field, trial_field


def check_command(job: AnyJob, doc: Document, diagnostics: Diagnostics) -> None:
    """Malformed, unclosed, unknown-scope and undeclared placeholders, each at its own columns."""
    command, path = command_field(job)
    found = placeholders(command)
    problems = [_problem(job, path, item) for item in found]
    if not any(problems):
        return
    located = _Locator(doc.span(tuple(path.split("."))))
    for item, problem in zip(found, problems, strict=True):
        span = located.find(item.text)  # every placeholder, in order: the same text may be written twice
        if problem:
            summary, hint = problem
            diagnostics.add(Diagnostic(summary, span, path, hint))


def check_unsubstituted(job: AnyJob, doc: Document, diagnostics: Diagnostics) -> None:
    """Placeholders are substituted in the command only: one anywhere else would reach the job as literal text."""
    variables = job.trial.environment_variables if isinstance(job, SweepJob) else job.environment_variables
    for name, value in variables.items():
        found = placeholders(value)
        if found:
            path = f"{trial_field(job, 'environment_variables')}.{name}"
            diagnostics.add(Diagnostic(
                f"job '{job.name}': {path} holds '{found[0].text}', but placeholders are substituted only in the "
                "command", _Locator(doc.span((*path.split(".")[:-1], name))).find(found[0].text), path,
                f"pass it on the command line instead, e.g. {name}={found[0].fix or found[0].text} python ..."))


def _problem(job: AnyJob, path: str, item: Placeholder) -> tuple[str, str] | None:
    """What is wrong with one placeholder (summary, hint), or None."""
    declared: dict[str, list[str]] = {"inputs": list(job.inputs), "outputs": list(job.outputs)}
    scopes: tuple[str, ...] = PLACEHOLDER_SCOPES
    if isinstance(job, SweepJob):
        declared[SEARCH_SPACE_SCOPE] = list(job.search_space)
        scopes = (*scopes, SEARCH_SPACE_SCOPE)
    where = f"job '{job.name}': {path}"
    if item.problem:
        return f"{where}: placeholder '{item.text}' {item.problem}", f"write {item.fix}"
    if item.scope not in declared:
        guess = did_you_mean(item.scope, scopes)
        hint = f"did you mean '{_with(item, guess)}'?" if guess else \
            "use " + " or ".join(f"${{{{{scope}.NAME}}}}" for scope in scopes)
        return f"{where}: unknown placeholder scope '{item.scope}' in '{item.text}'", hint
    if item.name not in declared[item.scope]:
        guess = did_you_mean(item.name, declared[item.scope])
        hint = f"did you mean '{guess}'?" if guess else f"declare it under {item.scope}:"
        return f"{where} uses {item.scope}.{item.name}, which is not declared in {item.scope}", hint
    return None


def _with(item: Placeholder, scope: str) -> str:
    return f"${{{{{scope}.{item.name}}}}}"


class _Locator:
    """Maps placeholders of a scalar's value back to source columns.

    A value's offsets are not its source columns (quotes, escapes, block scalars spread over lines), so each
    placeholder is found as it is written, in order, inside the scalar's lines of the file."""

    def __init__(self, span: Span | None) -> None:
        self.span = span
        self.line = span.line if span else 0
        self.column = span.column - 1 if span else 0  # 0-based, where the next search starts

    def find(self, text: str) -> Span | None:
        span = self.span
        if span is None:
            return None
        lines = _source_lines(span.file)
        for number in range(self.line, min(span.end_line, len(lines)) + 1):
            source = lines[number - 1]
            start = source.find(text, self.column if number == self.line else 0)
            if start >= 0:
                self.line, self.column = number, start + len(text)
                return Span(span.file, number, start + 1, number, start + 1 + len(text))
        return span  # not written verbatim (an escape inside it): the whole value


def _source_lines(file: str) -> list[str]:
    try:
        with open(file, encoding="utf-8", errors="replace") as handle:
            return handle.read().splitlines()
    except OSError:
        return []

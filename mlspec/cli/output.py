"""Shared output helpers for commands: JSON printing, diagnostics and exit codes."""

from __future__ import annotations

import json
import sys
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1  # the operation ran and failed (a job failed, a server did not start)
EXIT_INVALID = 2  # the spec or the command line is invalid


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def report_diagnostics(analysis: Any, as_json: bool) -> int:
    """Print an analysis's diagnostics; the exit code says whether the spec is valid."""
    from mlspec.render.diagnostics import render
    from mlspec.render.style import Style, use_colour

    items = analysis.diagnostics.sorted()
    if as_json:
        print_json({"valid": not analysis.diagnostics.errors, "files": analysis.files,
                    "diagnostics": [d.as_dict() for d in items]})
    elif items:
        sys.stderr.write(render(items, Style(use_colour(sys.stderr)), len(analysis.files)) + "\n")
    return EXIT_INVALID if analysis.diagnostics.errors else EXIT_OK


def report_spec_error(error: Any, as_json: bool) -> int:
    """Print the diagnostics of a SpecError raised past validation (e.g. by a target's capacity check)."""
    from types import SimpleNamespace

    files = sorted({d.span.file for d in error.diagnostics.items if d.span})
    return report_diagnostics(SimpleNamespace(diagnostics=error.diagnostics, files=files), as_json)

"""The spec at a git revision, analysed for `plan --base`: beside the working tree's on a second core when it can."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlspec.graph import Graph, analyze
from mlspec.load.revision import Revision, spec_at
from mlspec.plan import Record, records_of
from mlspec.resolve.stacks import spec_folder


@dataclass
class BaseSpec:
    """The base's recorded-state stand-in, or why the spec there does not validate."""

    records: dict[str, Record] | None
    problem: str = ""
    generated: list[Any] | None = None  # the Pulumi resources that change, where the caller asked for them


def analyse_base(paths: Sequence[str], revision: Revision, target: str,
                 compare: Callable[[Graph], list[Any]] | None = None) -> BaseSpec:
    """The spec at `revision`, read from its root folder, or from the whole repository when it reads files outside
    that folder. `compare` runs on the base's graph while its files exist (the generated resources' diff)."""
    problem = ""
    for whole in (False, True):
        with spec_at(paths, revision, whole) as copy:
            # The base is only compared with: what its target honours matters only for the program it compiles to.
            analysis = analyze(copy, target if compare else None)  # type: ignore[arg-type]
            if analysis.graph is not None:
                generated = compare(analysis.graph) if compare else None
                return BaseSpec(records_of(analysis.graph), generated=generated)
            problem = _problem(analysis, revision, copy[0], paths)
    return BaseSpec(None, problem)


def in_background(paths: Sequence[str], revision: Revision, target: str) -> Future[BaseSpec] | None:
    """`analyse_base` started in a forked process, so the working tree's spec is analysed meanwhile on another
    core; None where only one core is available (the caller analyses in process)."""
    if (os.cpu_count() or 1) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return None
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    future = pool.submit(analyse_base, list(paths), revision, target)
    pool.shutdown(wait=False)  # the worker exits once the one task is done
    return future


def _problem(analysis: Any, revision: Revision, root: Path, paths: Sequence[str]) -> str:
    """The base's errors, with paths as the user typed them rather than the temporary copy's."""
    copied = (root if root.is_dir() else root.parent).resolve()
    typed = spec_folder(paths)
    lines = []
    for diagnostic in analysis.diagnostics.sorted():
        if diagnostic.severity != "error":
            continue
        where = ""
        if diagnostic.span:
            located = Path(diagnostic.span.file).resolve()
            shown = typed / located.relative_to(copied) if located.is_relative_to(copied) else Path(located.name)
            where = f"{shown}:{diagnostic.span.line}: "
        lines.append(f"  {where}{diagnostic.summary}")
    return (f"the spec at {revision.describe()} does not validate, so there is nothing to compare with:\n"
            + "\n".join(lines[:10]) + "\nname another base (--base), or plan against the deployed state")

"""Helpers shared by commands that act on a spec: load it, pick the engine, ask for confirmation."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mlspec.cli.output import EXIT_INVALID, report_diagnostics


class CommandError(Exception):
    """A user-facing failure: printed without a traceback; `code` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_INVALID):
        super().__init__(message)
        self.code = code


def load_spec(args: argparse.Namespace, check_target: bool = True) -> Any:
    """The graph of the spec named on the command line, checked against what its target honours; exits 2 with
    diagnostics when it is invalid, and prints warnings (to standard error) when it is not."""
    from mlspec.graph import analyze

    analysis = analyze(args.paths, target_of(args) if check_target else None)
    if analysis.graph is None:
        report_diagnostics(analysis, getattr(args, "json", False))
        raise CommandError("", EXIT_INVALID)
    if analysis.diagnostics:
        report_diagnostics(analysis, as_json=False)
    return analysis.graph


def target_of(args: argparse.Namespace) -> Any:
    """The target a command deploys to or checks against: --target or the stack's, else the local engine."""
    return getattr(args, "target", None) or "local"


def local_engine(args: argparse.Namespace, check_target: bool = False) -> Any:
    """The local engine on the spec; `check_target` for commands that deploy it (plan, up)."""
    require_local(args)
    from mlspec.backends.local.engine import LocalEngine
    from mlspec.cli.failures import note_workspace
    from mlspec.cli.stacks import check_workspace

    engine = LocalEngine(load_spec(args, check_target), lock_timeout=getattr(args, "lock_timeout", 0.0))
    note_workspace(engine.paths.root)
    check_workspace(engine.paths, args)
    return engine


def require_local(args: argparse.Namespace) -> None:
    """The local engine's commands refuse the other targets, rather than act on the local workspace."""
    target = target_of(args)
    if target != "local":
        raise CommandError(f"this command reads the local engine's workspace; a {target} deployment is Pulumi's: "
                           f"use `mlspec preview|up|down` with the same --stack or --target {target}")


def confirm(question: str, args: argparse.Namespace) -> bool:
    if getattr(args, "yes", False):
        return True
    if not sys.stdin.isatty():
        raise CommandError("not applying without confirmation: pass --yes to run without a terminal")
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")

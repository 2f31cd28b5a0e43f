"""`--stack` on the command line: the stack and target a command acts on, and the local workspace it may touch."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from mlspec.cli.common import CommandError
from mlspec.cli.output import EXIT_INVALID


def choose(args: argparse.Namespace) -> None:
    """Set `args.target` and `args.selection` from --target, --stack, MLSPEC_STACK and the stack file's default."""
    from mlspec.resolve.stacks import select
    from mlspec.spec.capabilities import Target

    fallback: Target = "docker" if args.command == "compile" else "local"
    selection = select(args.paths, args.stack, args.target, os.environ, fallback)
    if selection.overridden and selection.source != "default":
        print(f"mlspec: {selection.describe()}", file=sys.stderr)
    args.target, args.selection = selection.target, selection
    carried = selection.kubernetes
    if carried is not None and carried.registry and hasattr(args, "registry") and not args.registry:
        args.registry = carried.registry  # a command's --registry option defaults to the stack's registry


def selection_of(args: argparse.Namespace) -> Any:
    """The command's selection; commands run without `choose` (tests, --workspace) act as no stack."""
    from mlspec.resolve.stacks import Selection

    return getattr(args, "selection", None) or Selection(getattr(args, "target", None) or "local")


def announce(args: argparse.Namespace) -> None:
    """Say which stack and target a command reads (on standard error, so its output stays as it was)."""
    selection = selection_of(args)
    if selection.stack is not None:
        print(f"mlspec: {selection.describe()}", file=sys.stderr, flush=True)


def check_workspace(paths: Any, args: argparse.Namespace) -> None:
    """Refuse to act on a local workspace that another stack deployed."""
    from mlspec.backends.local.stack_claim import conflict

    problem = conflict(paths, selection_of(args).stack)
    if problem:
        raise CommandError(problem, EXIT_INVALID)


def claim_workspace(paths: Any, args: argparse.Namespace) -> None:
    from mlspec.backends.local.stack_claim import claim

    claim(paths, selection_of(args).stack)


def release_workspace(paths: Any) -> None:
    from mlspec.backends.local.stack_claim import release

    release(paths)

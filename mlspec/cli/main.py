"""`mlspec` entry point: argument parsing and dispatch; each command imports what it needs lazily."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from mlspec import __version__

Handler = Callable[[argparse.Namespace], int]

DESCRIPTION = """\
mlspec: declare ML workspaces, compute, environments, data, jobs, models and endpoints
as code; validate, plan and deploy them idempotently.

Start with:
  mlspec validate examples/iris      check a spec, with precise diagnostics
  mlspec graph examples/iris         show its resources and dependencies
  mlspec schema -o mlspec.schema.json  JSON Schema for your editor
"""


def _paths(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", default=["."], metavar="SPEC",
                        help="spec files or folders (default: the current folder)")


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlspec", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"mlspec {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = commands.add_parser("validate", help="check a spec; exit 0 if valid, 2 if not",
                            description="Load, validate and resolve a spec; print every problem at once.")
    _paths(p)
    _json(p)
    p.set_defaults(handler=_lazy("mlspec.cli.spec_commands", "validate"))

    p = commands.add_parser("schema", help="print the JSON Schema of spec documents",
                            description="Print the JSON Schema that editors use to complete and check specs.")
    p.add_argument("-o", "--output", help="write to this file instead of standard output")
    p.set_defaults(handler=_lazy("mlspec.cli.spec_commands", "schema"))

    p = commands.add_parser("graph", help="show resources, dependencies and content hashes",
                            description="Show the resource graph in dependency order.")
    _paths(p)
    p.add_argument("--format", choices=["text", "mermaid", "json"], default="text", help="output format")
    p.set_defaults(handler=_lazy("mlspec.cli.spec_commands", "graph"))
    return parser


def _lazy(module: str, function: str) -> Handler:
    """A handler imported only when its command runs, so `mlspec --help` stays fast."""
    def handler(args: argparse.Namespace) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), function)(args))

    return handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


def entry() -> None:
    sys.exit(main())

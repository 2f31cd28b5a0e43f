"""Commands that only read a spec: validate, schema, graph."""

from __future__ import annotations

import argparse
import json
import sys

from mlspec.cli.output import EXIT_OK, print_json, report_diagnostics
from mlspec.graph import analyze


def validate(args: argparse.Namespace) -> int:
    analysis = analyze(args.paths, args.target)
    code = report_diagnostics(analysis, args.json)
    if code == EXIT_OK and not args.json:
        count = len(analysis.graph.nodes) if analysis.graph else 0
        print(f"valid: {count} resources in {len(analysis.files)} file{'s' if len(analysis.files) != 1 else ''}")
    return code


def schema(args: argparse.Namespace) -> int:
    from mlspec.spec.schema import json_schema, stacks_json_schema

    if getattr(args, "plan", False):
        from mlspec.render.plan_json import plan_schema

        text = json.dumps(plan_schema(), indent=2, ensure_ascii=False) + "\n"
    else:
        text = json.dumps(stacks_json_schema() if getattr(args, "stacks", False) else json_schema(), indent=2) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def targets(args: argparse.Namespace) -> int:
    from mlspec.render.style import Style, use_colour
    from mlspec.render.targets import selected, targets_json, targets_markdown, targets_text
    from mlspec.spec.capabilities import field_rows

    rows = selected(field_rows(), args.target)
    if args.json:
        print_json(targets_json(rows))
    elif args.markdown:
        sys.stdout.write(targets_markdown(rows))
    else:
        print(targets_text(rows, Style(use_colour())))
    return EXIT_OK


def graph(args: argparse.Namespace) -> int:
    from mlspec.render.graph import graph_json, graph_mermaid, graph_text

    analysis = analyze(args.paths)
    code = report_diagnostics(analysis, False)
    if analysis.graph is None:
        return code
    if args.format == "json":
        print_json(graph_json(analysis.graph))
    else:
        print(graph_mermaid(analysis.graph) if args.format == "mermaid" else graph_text(analysis.graph))
    return EXIT_OK

"""`mlspec plan`: the spec against what is deployed (the workspace, or a shared state), or against a git revision."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mlspec.cli.common import CommandError, load_spec, target_of
from mlspec.cli.output import EXIT_FAILED, EXIT_INVALID, EXIT_OK, print_json, report_spec_error
from mlspec.diagnostics import SpecError


def plan(args: argparse.Namespace) -> int:
    from mlspec.cli.shared_state import plan_of
    from mlspec.cli.stacks import announce

    announce(args)
    if args.base and getattr(args, "state", None):
        raise CommandError("--base compares with the spec at a git revision, --state with what is deployed: "
                           "pass one of them")
    try:
        report = _against_revision(args) if args.base else plan_of(args)
    except CommandError as exc:
        # With --detailed-exitcode, 2 means "changes": a spec that does not validate must not read as one.
        if args.detailed_exitcode and exc.code == EXIT_INVALID:
            raise CommandError(str(exc), EXIT_FAILED) from exc
        raise
    except SpecError as exc:
        code = report_spec_error(exc, _format(args) == "json")
        return EXIT_FAILED if args.detailed_exitcode else code
    _print(report, _format(args))
    if report.plan.blockers:
        return EXIT_FAILED
    if args.detailed_exitcode:
        return 2 if report.has_changes else EXIT_OK
    return EXIT_OK


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    return "json" if args.json else "markdown" if args.markdown else "text"


def _print(report: Any, form: str) -> None:
    if form == "json":
        from mlspec.render.plan_json import plan_document

        print_json(plan_document(report))
    elif form == "markdown":
        from mlspec.render.plan_markdown import report_markdown

        sys.stdout.write(report_markdown(report))
    else:
        from mlspec.render.plan import report_text
        from mlspec.render.style import Style, use_colour

        print(report_text(report, Style(use_colour())))


def _against_revision(args: argparse.Namespace) -> Any:
    """The working tree's spec against the same paths at `--base`, reading no state and touching nothing."""
    from mlspec.cli.base_spec import analyse_base, in_background
    from mlspec.load.revision import RevisionError, resolve_revision
    from mlspec.plan import plan
    from mlspec.plan.report import Base, build_report
    from mlspec.resolve.stacks import spec_folder

    target = target_of(args)
    try:
        revision = resolve_revision(spec_folder(args.paths), args.base)
        pulumi = target in ("docker", "kubernetes")
        pending = None if pulumi else in_background(args.paths, revision, target)
        head = load_spec(args, check_target=True)
        compare = (lambda base: _generated(base, head, args)) if pulumi else None
        base = pending.result() if pending else analyse_base(args.paths, revision, target, compare)
    except RevisionError as exc:
        raise CommandError(str(exc), EXIT_INVALID) from exc
    if base.records is None:
        raise CommandError(base.problem, EXIT_INVALID)
    details = {"ref": revision.ref, "commit": revision.commit, "merge_base": revision.merge_base}
    return build_report(plan(head, base.records), head, base.records, Base("git", revision.describe(), details),
                        target, base.generated)


def _generated(base: Any, head: Any, args: argparse.Namespace) -> list[Any]:
    """The Pulumi program's resources that change, placed as the stack's `mlspec compile` places them."""
    from mlspec.backends.pulumi import CompileError
    from mlspec.backends.pulumi.changes import generated_changes
    from mlspec.cli.stacks import selection_of

    try:
        return list(generated_changes(base, head, target_of(args), selection_of(args).kubernetes))
    except CompileError as error:
        raise CommandError(str(error), EXIT_INVALID) from None

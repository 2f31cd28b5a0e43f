"""`mlspec init` (a new project) and `mlspec init ci` (its GitHub Actions workflow)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from mlspec.cli.common import CommandError
from mlspec.cli.output import EXIT_OK

if TYPE_CHECKING:
    from mlspec.scaffold import Written


def init(args: argparse.Namespace) -> int:
    words = list(args.words)
    if words[:1] == ["ci"]:
        return _ci(args, words[1:])
    if args.spec is not None or args.stacks:
        raise CommandError("--spec and --stack belong to `mlspec init ci`")
    if len(words) > 1:
        raise CommandError(f"one folder at most, not {' '.join(words)} (a folder named ci: `mlspec init ./ci`)")
    from mlspec.scaffold import ScaffoldError, scaffold_project

    folder = Path(words[0] if words else ".")
    try:
        name, written = scaffold_project(folder, args.template or "sklearn", args.name, args.force)
    except ScaffoldError as error:
        raise CommandError(str(error)) from None
    _report(folder, written)
    shown = "" if folder == Path(".") else f"cd {folder} && "
    print(f"Project '{name}' ({args.template or 'sklearn'}) is ready: {shown}mlspec validate && mlspec up, then "
          f"mlspec endpoint invoke {name} --data request.json")
    return EXIT_OK


def _ci(args: argparse.Namespace, words: list[str]) -> int:
    if args.template is not None or args.name is not None:
        raise CommandError("--template and --name belong to `mlspec init`, not `mlspec init ci`")
    if len(words) > 1:
        raise CommandError(f"one repository folder at most, not {' '.join(words)}")
    from mlspec.scaffold import WORKFLOW_PATH, ScaffoldError, write_workflow

    root = Path(words[0] if words else ".")
    try:
        stacks, written = write_workflow(root, Path(args.spec) if args.spec else None, args.stacks or (), args.force)
    except ScaffoldError as error:
        raise CommandError(str(error)) from None
    _report(root, written)
    covered = [*(f"{name} (drift)" for name in stacks.local_stacks),
               *(f"{name} (pulumi preview and drift)" for name in stacks.pulumi_stacks)]
    print(f"{root / WORKFLOW_PATH}: validates and plans pull requests"
          + (f"; stacks: {', '.join(covered)}" if covered else "; drift check on the local deployment")
          + ". Set " + " and ".join([*(["the repository variable MLSPEC_STATE"] if stacks.local else []),
                                       *(["the secret PULUMI_ACCESS_TOKEN"] if stacks.pulumi_stacks else [])]) + ".")
    return EXIT_OK


def _report(root: Path, written: Written) -> None:
    for verb, paths in (("created", written.created), ("replaced", written.replaced)):
        for path in paths:
            print(f"{verb} {root / path}")
    if not written.created and not written.replaced:
        count = len(written.unchanged)
        files = f"the {count} files under {root} are" if count != 1 else f"{root / written.unchanged[0]} is"
        print(f"nothing to write: {files} up to date")

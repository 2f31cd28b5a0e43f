"""`mlspec init ci`: the GitHub Actions workflow that validates, plans and previews pull requests and checks drift."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlspec import __version__
from mlspec.diagnostics import Diagnostics, SpecError, did_you_mean
from mlspec.render.plan_markdown import MARKER
from mlspec.scaffold.files import ScaffoldError, Written, render, write_files

WORKFLOW_PATH = ".github/workflows/mlspec.yml"
PYTHON = "3.11"
PULUMI_TARGETS = ("docker", "kubernetes")
# Pinned to full commit SHAs (a tag can be moved to other code); the comment names the release.
ACTIONS = {
    "checkout": "actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd # v6.0.2",
    "setup_python": "actions/setup-python@a309ff8b426b58ec0e2a45f0f869d46889d02405 # v6.2.0",
    "pulumi": "pulumi/actions@8e5e406f4007fca908480587cb9893c07090f58d # v7.0.0",
}


@dataclass(frozen=True)
class CiStacks:
    """The stacks the workflow covers: local ones get an mlspec drift check, Pulumi ones previews and a Pulumi drift
    check. Without a stack file, `local` is true and `local_stacks` empty: the spec's one local deployment."""

    local_stacks: tuple[str, ...] = ()
    pulumi_stacks: tuple[str, ...] = ()
    local: bool = True


def ci_stacks(spec_folder: Path, only: Sequence[str] = ()) -> CiStacks:
    """The stacks of the spec folder's stack file (read with the stack loader), or only those named."""
    from mlspec.resolve.stacks import find_stacks_file, load_stacks

    diagnostics = Diagnostics()
    path = find_stacks_file(spec_folder, diagnostics)
    found = load_stacks(path, diagnostics) if path is not None else None
    if diagnostics.errors:
        raise SpecError(diagnostics)
    if found is None:
        if only:
            raise ScaffoldError(f"--stack {only[0]}: {spec_folder} has no stack file (mlspec.stacks.yaml)")
        return CiStacks()
    stacks = found[0].stacks
    for name in only:
        if name not in stacks:
            guess = did_you_mean(name, stacks)
            raise ScaffoldError(f"--stack {name}: the stack file has no such stack; "
                                + (f"did you mean '{guess}'?" if guess else f"its stacks: {', '.join(stacks)}"))
    chosen = [name for name in stacks if not only or name in only]
    local = tuple(name for name in chosen if stacks[name].target not in PULUMI_TARGETS)
    pulumi = tuple(name for name in chosen if stacks[name].target in PULUMI_TARGETS)
    return CiStacks(local, pulumi, bool(local))


def workflow_text(spec: str, stacks: CiStacks, only: Sequence[str] = ()) -> str:
    """The workflow for the spec at `spec` (relative to the repository root, POSIX separators)."""
    command = " ".join(["mlspec init ci", *([f"--spec {spec}"] if spec != "." else []),
                        *(f"--stack {name}" for name in only)])
    return render("ci", "github-workflow.yml.j2", command=command, spec=spec, requirement=f"mlspec=={__version__}",
                  python=PYTHON, actions=ACTIONS, marker=MARKER, local=stacks.local,
                  local_stacks=list(stacks.local_stacks), pulumi_stacks=list(stacks.pulumi_stacks))


def write_workflow(root: Path, spec: Path | None = None, only: Sequence[str] = (),
                   force: bool = False) -> tuple[CiStacks, Written]:
    """Write `.github/workflows/mlspec.yml` under the repository root `root` for the spec at `spec` (a folder or file
    inside it; default: the root). Writing it again with the same inputs changes nothing."""
    from mlspec.resolve.stacks import spec_folder

    spec = root if spec is None else spec
    if not spec.exists():
        raise ScaffoldError(f"'{spec}' does not exist: pass --spec with the spec's folder or file")
    try:
        relative = spec.resolve().relative_to(root.resolve()).as_posix() or "."
    except ValueError:
        raise ScaffoldError(f"the spec '{spec}' is outside the repository folder '{root}'") from None
    stacks = ci_stacks(spec_folder([spec]), list(dict.fromkeys(only)))
    return stacks, write_files(root, {WORKFLOW_PATH: workflow_text(relative, stacks, list(dict.fromkeys(only)))},
                               force)

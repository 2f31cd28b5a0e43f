"""Stack selection: the stack file beside a spec, checked with positions, and the stack and target a command uses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from mlspec.diagnostics import Diagnostic, Diagnostics, SpecError, did_you_mean
from mlspec.load import Document, display_path, parse_yaml
from mlspec.spec.capabilities import Target
from mlspec.spec.stacks import STACK_ENV, STACK_NAME, STACKS_FILES, DockerStack, KubernetesStack, Stack, StacksFile
from mlspec.spec.state_location import resolved
from mlspec.validate.pydantic_errors import to_diagnostics

LABEL = "stack file"


@dataclass(frozen=True)
class Selection:
    """The target a command acts on and, when one is chosen, the stack that chose it."""

    target: Target
    stack: str | None = None
    settings: Stack | None = None
    file: str | None = None  # the stack file, as the user would type its path
    source: str = ""  # how the stack was named: "--stack", MLSPEC_STACK or "default"
    overridden: Target | None = None  # the stack's own target, where --target replaced it
    folder: Path | None = None  # the stack file's folder, which relative paths in it start from

    @property
    def state(self) -> str | None:
        """The stack's shared state location (relative paths made absolute), where the command deploys with the
        stack's own target."""
        if self.settings is None or self.settings.state is None or self.overridden is not None:
            return None
        return resolved(self.settings.state, self.folder or Path("."))

    @property
    def docker(self) -> DockerStack | None:
        """The stack's docker settings, where the command deploys with them."""
        usable = self.settings is not None and self.overridden is None and self.target == "docker"
        return self.settings.docker if usable and self.settings else None

    @property
    def kubernetes(self) -> KubernetesStack | None:
        usable = self.settings is not None and self.overridden is None and self.target == "kubernetes"
        return self.settings.kubernetes if usable and self.settings else None

    def describe(self) -> str:
        """One line: which stack, named how, and which target."""
        if self.stack is None:
            return f"target {self.target} (no stack)"
        named = f"the default of {self.file}" if self.source == "default" else self.source
        over = f", overriding the stack's target {self.overridden} with --target" if self.overridden else ""
        return f"stack '{self.stack}' (from {named}): target {self.target}{over}"


def spec_folder(paths: Sequence[str | Path]) -> Path:
    """The folder of the first spec path: where its stack file lives (the loader resolves paths from it too)."""
    first = Path(paths[0]) if paths else Path(".")
    return first if first.is_dir() else first.parent


def find_stacks_file(folder: Path, diagnostics: Diagnostics) -> Path | None:
    found = [folder / name for name in STACKS_FILES if (folder / name).is_file()]
    if len(found) > 1:
        diagnostics.error(f"{display_path(folder)} has both {found[0].name} and {found[1].name}",
                          hint="keep one stack file per spec folder")
        return None
    return found[0] if found else None


def load_stacks(path: Path, diagnostics: Diagnostics) -> tuple[StacksFile, Document] | None:
    """The stack file, validated, and its document (for positions); None (with diagnostics at their lines) when it
    is not valid."""
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        diagnostics.error(f"cannot read '{shown}': {exc}")
        return None
    before = len(diagnostics.errors)
    documents = parse_yaml(text, shown, diagnostics)
    if len(diagnostics.errors) > before:
        return None
    if len(documents) != 1 or not isinstance(documents[0].data, dict):
        span = documents[1].span(()) if len(documents) > 1 else (documents[0].span(()) if documents else None)
        diagnostics.error(f"{shown} is one mapping with 'stacks:' (and 'default:')", span,
                          hint="write `stacks:` with one entry per stack, each with its `target:`")
        return None
    doc = documents[0]
    stacks = doc.data.get("stacks")
    for name in stacks if isinstance(stacks, dict) else ():
        if not STACK_NAME.match(name):
            diagnostics.error(f"{LABEL}: '{name}' is not a stack name: letters, digits, '-', '_' and '.', "
                              "at most 100, starting with a letter or digit", doc.key_span(("stacks", name)),
                              f"stacks.{name}")
    try:
        loaded = StacksFile.model_validate(doc.data)
    except ValidationError as exc:
        diagnostics.extend(to_diagnostics(exc, StacksFile, doc, LABEL))
        return None
    if loaded.default is not None and loaded.default not in loaded.stacks:
        guess = did_you_mean(loaded.default, loaded.stacks)
        diagnostics.error(f"{LABEL}: default '{loaded.default}' is not one of its stacks", doc.span(("default",)),
                          "default", f"did you mean '{guess}'?" if guess else f"use one of {', '.join(loaded.stacks)}")
    return None if len(diagnostics.errors) > before else (loaded, doc)


def select(paths: Sequence[str | Path], stack: str | None, target: Target | None, environ: Mapping[str, str],
           fallback: Target = "local") -> Selection:
    """The stack and target of a command: --target, else the stack's (--stack, else MLSPEC_STACK, else the stack
    file's default), else `fallback`. Raises SpecError when the stack file is invalid or names no such stack."""
    diagnostics = Diagnostics()
    folder = spec_folder(paths)
    path = find_stacks_file(folder, diagnostics)
    found = load_stacks(path, diagnostics) if path is not None else None
    if diagnostics.errors:
        raise SpecError(diagnostics)
    stacks, doc = found if found is not None else (None, None)
    name, source = (stack, "--stack") if stack else (environ.get(STACK_ENV) or None, STACK_ENV)
    if name is None and stacks is not None and stacks.default is not None:
        name, source = stacks.default, "default"
    if name is None:
        return Selection(target or fallback)
    named = f"--stack {name}" if source == "--stack" else f"{STACK_ENV}={name}"
    if stacks is None or doc is None or path is None:
        diagnostics.add(Diagnostic(f"{named} names a stack, and {display_path(folder) or '.'} has no stack file",
                                   hint=f"write {display_path(folder / STACKS_FILES[0])} with a `stacks:` entry "
                                        f"'{name}', or leave the stack out"))
        raise SpecError(diagnostics)
    if name not in stacks.stacks:
        guess = did_you_mean(name, stacks.stacks)
        diagnostics.add(Diagnostic(f"{named}: {display_path(path)} has no stack '{name}'", doc.key_span(("stacks",)),
                                   hint=f"did you mean '{guess}'?" if guess else
                                   f"its stacks: {', '.join(stacks.stacks)}"))
        raise SpecError(diagnostics)
    entry = stacks.stacks[name]
    chosen = target or entry.target
    return Selection(chosen, name, entry, display_path(path), source,
                     entry.target if chosen != entry.target else None, path.parent)

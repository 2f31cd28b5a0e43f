"""Finds spec files (files, folders, includes) and turns each into positioned documents."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mlspec.diagnostics import Diagnostics, Span
from mlspec.load.python_source import run_python_spec
from mlspec.load.yaml_source import Document, parse_yaml
from mlspec.spec.stacks import STACKS_FILES

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class Loaded:
    """Everything read from the user's paths."""

    documents: list[Document] = field(default_factory=list)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)
    files: list[str] = field(default_factory=list)
    root: Path = Path(".")  # folder that relative paths in the spec are resolved against


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def spec_files(folder: Path) -> list[Path]:
    """The spec files of a folder: its YAML files (the stack file aside), or `mlspec.py` when it has none."""
    found = sorted(p for p in folder.iterdir()
                   if p.suffix in YAML_SUFFIXES and p.name not in STACKS_FILES and p.is_file())
    if not found and (folder / "mlspec.py").is_file():
        found = [folder / "mlspec.py"]
    return found


def load(paths: list[str] | list[Path]) -> Loaded:
    """Load spec files and folders; every problem becomes a diagnostic, nothing is raised."""
    loaded = Loaded()
    seen: set[Path] = set()
    first = Path(paths[0]) if paths else Path(".")
    loaded.root = (first if first.is_dir() else first.parent).resolve()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = spec_files(path)
            if not files:
                loaded.diagnostics.error(f"no spec files in folder '{raw}'", hint="add an mlspec.yaml, or pass a file")
            for file in files:
                _load_file(file, loaded, seen, None)
        elif path.is_file():
            _load_file(path, loaded, seen, None)
        else:
            loaded.diagnostics.error(f"'{raw}' does not exist", hint="pass a spec file or a folder of spec files")
    return loaded


def _load_file(path: Path, loaded: Loaded, seen: set[Path], included_from: Span | None) -> None:
    resolved = path.resolve()
    if resolved in seen:
        return  # included twice, or through a cycle of includes: load once
    seen.add(resolved)
    shown = display_path(path)
    loaded.files.append(shown)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        loaded.diagnostics.error(f"cannot read '{shown}': {exc}", included_from)
        return
    if path.suffix == ".py":
        documents = run_python_spec(path, shown, loaded.diagnostics)
    else:
        documents = parse_yaml(text, shown, loaded.diagnostics)
    for doc in documents:
        if isinstance(doc.data, dict) and "include" in doc.data and "kind" not in doc.data:
            _include(doc, path.parent, loaded, seen)
        else:
            loaded.documents.append(doc)


def _include(doc: Document, base: Path, loaded: Loaded, seen: set[Path]) -> None:
    """A document `include: [a.yaml, more/]` loads more files, relative to the including file."""
    extra = set(doc.data) - {"include"}
    if extra:
        loaded.diagnostics.error(f"an include document has only 'include', not '{sorted(extra)[0]}'",
                                 doc.key_span((sorted(extra)[0],)))
    targets = doc.data["include"]
    targets = [targets] if isinstance(targets, str) else targets
    if not isinstance(targets, list):
        loaded.diagnostics.error("include takes a path or a list of paths", doc.span(("include",)))
        return
    for i, target in enumerate(targets):
        span = doc.span(("include", i)) if isinstance(doc.data["include"], list) else doc.span(("include",))
        if not isinstance(target, str):
            loaded.diagnostics.error("include takes a path or a list of paths", span)
            continue
        path = base / target
        if path.is_dir():
            for file in spec_files(path):
                _load_file(file, loaded, seen, span)
        elif path.is_file():
            _load_file(path, loaded, seen, span)
        else:
            loaded.diagnostics.error(f"included file '{target}' does not exist", span,
                                     hint=f"paths are relative to {display_path(base) or '.'}")

"""`mlspec init`: a project that `mlspec up` runs at once, with an editor setup that checks every document."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlspec.scaffold.files import ScaffoldError, Written, render, write_files
from mlspec.scaffold.sample_data import digits_csv, iris_csv
from mlspec.spec.base import NAME_PATTERN
from mlspec.spec.stacks import STACKS_FILES

SCHEMA_DIR = "schema"
SPEC_SCHEMA = f"{SCHEMA_DIR}/mlspec.schema.json"
STACKS_SCHEMA = f"{SCHEMA_DIR}/mlspec.stacks.schema.json"
# A `# yaml-language-server: $schema=` modeline covers only a file's first document; a glob mapping in the editor's
# settings covers every document of every file it matches.
SPEC_GLOBS = ("mlspec.yaml", "mlspec.yml", "*.mlspec.yaml", "*.mlspec.yml")
STACKS_GLOBS = STACKS_FILES
SETTINGS = ".vscode/settings.json"


@dataclass(frozen=True)
class Template:
    """A starting point: its data set (written by code) and the files rendered from templates/init/<name>/."""

    data_path: str
    data: Callable[[], str]


TEMPLATES = {
    "sklearn": Template("data/iris.csv", iris_csv),
    "torch": Template("data/digits.csv", digits_csv),
}


def project_name(folder: Path, name: str | None) -> str:
    """The workspace's name: `name`, else the folder's name made into a valid one."""
    if name is not None:
        if not re.match(NAME_PATTERN, name):
            raise ScaffoldError(f"--name '{name}' is not a workspace name: lower-case letters, digits, '-' and '_', "
                                "at most 63, starting and ending with a letter or digit")
        return name
    derived = re.sub(r"[^a-z0-9_-]+", "-", folder.resolve().name.lower()).strip("-_")[:63].strip("-_")
    if not re.match(NAME_PATTERN, derived):
        raise ScaffoldError(f"cannot make a workspace name of the folder name '{folder.resolve().name}': "
                            "pass --name NAME")
    return derived


def project_files(template: str, name: str) -> dict[str, str]:
    """Every file of a new project, by path relative to its folder."""
    from mlspec.spec.schema import json_schema, stacks_json_schema

    chosen = TEMPLATES[template]
    common = {"name": name, "data_path": chosen.data_path, "schema_dir": SCHEMA_DIR}
    return {
        "mlspec.yaml": render("init", f"{template}/mlspec.yaml.j2", **common),
        "src/train.py": render("init", f"{template}/train.py.j2", **common),
        "request.json": render("init", f"{template}/request.json.j2", **common),
        chosen.data_path: chosen.data(),
        ".gitignore": render("init", "common/gitignore.j2", **common),
        "README.md": render("init", "common/README.md.j2", **common),
        SETTINGS: render("init", "common/vscode-settings.json.j2", **common, spec_globs=list(SPEC_GLOBS),
                         stacks_globs=list(STACKS_GLOBS)),
        ".vscode/extensions.json": render("init", "common/vscode-extensions.json.j2"),
        # What `mlspec schema` and `mlspec schema --stacks` print, for editors that work offline.
        SPEC_SCHEMA: json.dumps(json_schema(), indent=2) + "\n",
        STACKS_SCHEMA: json.dumps(stacks_json_schema(), indent=2) + "\n",
    }


def scaffold_project(folder: Path, template: str = "sklearn", name: str | None = None,
                     force: bool = False) -> tuple[str, Written]:
    """Write a new project into `folder` (made if missing); returns its workspace name and what was written."""
    if template not in TEMPLATES:
        raise ScaffoldError(f"no template '{template}': choose one of {', '.join(TEMPLATES)}")
    if folder.exists() and not folder.is_dir():
        raise ScaffoldError(f"'{folder}' is a file, not a folder")
    chosen = project_name(folder, name)
    return chosen, write_files(folder, project_files(template, chosen), force)

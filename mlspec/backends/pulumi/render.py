"""Jinja2 rendering of the program model: strict, deterministic, every value printed through `tojson`."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

import mlspec

TEMPLATE_FOLDER = "pulumi"


def templates_root() -> Path:
    """`mlspec/templates` in an installed wheel; the repository's `templates/` in a checkout."""
    package = Path(mlspec.__file__).resolve().parent
    for candidate in (package / "templates", package.parent / "templates"):
        if (candidate / TEMPLATE_FOLDER).is_dir():
            return candidate
    raise FileNotFoundError(f"mlspec's templates are missing (looked in {package / 'templates'} and "
                            f"{package.parent / 'templates'}); reinstall mlspec")


def tojson(value: Any) -> str:
    """JSON with sorted keys, which is also a Python literal: booleans and None are refused, so a template can
    never print `true` or `null` into Python."""
    _check_python_literal(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _check_python_literal(value: Any) -> None:
    if value is None or isinstance(value, bool):
        raise TypeError(f"{value!r} has no JSON spelling that is also Python; leave the argument out instead")
    if isinstance(value, dict):
        for item in value.values():
            _check_python_literal(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_python_literal(item)


@cache
def templates(folder: str = TEMPLATE_FOLDER) -> jinja2.Environment:
    """The jinja2 environment of one folder of mlspec's templates: strict about undefined values, never escaping
    (Python, YAML, Dockerfiles, Markdown: no HTML), with a `tojson` filter."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_root() / folder)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["tojson"] = tojson
    return env


def render(template: str, **values: Any) -> str:
    return templates().get_template(template).render(**values)

"""Scaffolding: a new project (`mlspec init`) and its GitHub Actions workflow (`mlspec init ci`)."""

from mlspec.scaffold.files import ScaffoldError, Written
from mlspec.scaffold.project import TEMPLATES, scaffold_project
from mlspec.scaffold.workflow import WORKFLOW_PATH, write_workflow

__all__ = ["TEMPLATES", "WORKFLOW_PATH", "ScaffoldError", "Written", "scaffold_project", "write_workflow"]

"""The Pulumi back end: a resource graph compiled into a Pulumi project (graph → program model → templates)."""

from mlspec.backends.pulumi.compile import compile_project
from mlspec.backends.pulumi.model import CompileError, ProgramModel, build_program

__all__ = ["CompileError", "ProgramModel", "build_program", "compile_project"]

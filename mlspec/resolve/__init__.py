"""Resolve stage: references bound, defaults applied, files located."""

from mlspec.resolve.references import DEFAULT_COMPUTE, resolve
from mlspec.resolve.spec import Reference, ResolvedSpec

__all__ = ["DEFAULT_COMPUTE", "Reference", "ResolvedSpec", "resolve"]

"""The resolved spec: every resource with its references bound and its files located."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlspec.spec import Resource, Workspace
from mlspec.validate import Declared


@dataclass(frozen=True, slots=True)
class Reference:
    """`source` refers to `target` through the field at `path` (dotted)."""

    source: str
    path: str
    target: str
    # Whether the target's content hash is part of the source's: an environment or data change
    # retrains a job; the compute a job runs on does not.
    content: bool = True


@dataclass
class ResolvedSpec:
    root: Path
    workspace: Workspace
    resources: dict[str, Declared] = field(default_factory=dict)  # id -> resource, in declaration order
    references: list[Reference] = field(default_factory=list)
    files: dict[str, dict[str, Path]] = field(default_factory=dict)  # id -> field path -> file or folder
    implicit: set[str] = field(default_factory=set)  # ids mlspec added (default compute, models from outputs)
    # (source, path) -> target, made again whenever references were added since: the compilers ask for thousands
    # of targets, and a scan per question made a 1,000-resource workspace quadratic.
    _targets: dict[tuple[str, str], str] = field(default_factory=dict, init=False, repr=False, compare=False)
    _indexed: int = field(default=0, init=False, repr=False, compare=False)

    def target(self, source: str, path: str) -> str | None:
        """The id a field of a resource refers to, e.g. target('job/train', 'compute') == 'compute/cpu'."""
        if self._indexed != len(self.references):
            self._targets = {}
            for ref in self.references:  # the first reference of a field is the one
                self._targets.setdefault((ref.source, ref.path), ref.target)
            self._indexed = len(self.references)
        return self._targets.get((source, path))

    def get(self, resource_id: str) -> Resource:
        return self.resources[resource_id].resource

    def of_kind(self, kind: str) -> list[Declared]:
        return [d for d in self.resources.values() if d.kind == kind]

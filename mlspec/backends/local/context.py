"""What every local handler gets: the graph, the workspace, the state and a way to report progress."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.state import StateStore
from mlspec.graph import Graph, Node
from mlspec.plan import Record


class StepFailed(Exception):
    """A step failed for a reason the user can act on; the message is shown as it is. `partial`: outputs worth
    recording all the same (which of a pipeline's steps finished)."""

    def __init__(self, message: str, partial: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass
class Context:
    graph: Graph
    paths: WorkspacePaths
    store: StateStore
    records: dict[str, Record]  # the state as it was, updated as steps complete
    say: Callable[[str], None]  # one line of progress or job log output
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)  # set on Ctrl-C: steps in flight wind down
    # compute id -> its free nodes, shared by the jobs and pipeline steps of one apply (see handlers.compute)
    computes: dict[str, threading.Semaphore] = field(default_factory=dict)

    @property
    def tracking_uri(self) -> str:
        return self.graph.spec.workspace.tracking.uri or self.paths.tracking_uri

    def target(self, source: str, path: str) -> str | None:
        return self.graph.spec.target(source, path)

    def outputs(self, resource_id: str) -> dict[str, Any]:
        with self.lock:
            record = self.records.get(resource_id)
        return dict(record.outputs) if record else {}

    def node(self, resource_id: str) -> Node:
        return self.graph.nodes[resource_id]

"""Per-kind handlers of the local engine: apply(ctx, node) -> outputs, delete(ctx, record)."""

from __future__ import annotations

from typing import Any, Protocol

from mlspec.backends.local.context import Context
from mlspec.graph import Node
from mlspec.plan import Record


class Handler(Protocol):
    def apply(self, ctx: Context, node: Node) -> dict[str, Any]: ...

    def delete(self, ctx: Context, record: Record, purge: bool) -> None: ...


def handler_for(kind: str) -> Handler:
    from mlspec.backends.local.handlers import compute, data, endpoint, environment, job, model

    handlers: dict[str, Any] = {"Compute": compute, "Data": data, "Endpoint": endpoint,
                                "Environment": environment, "Job": job, "Model": model}
    handler: Handler = handlers[kind]
    return handler

"""A docker stack's Pulumi state as recorded (outputs and URNs), standing in for the Automation API, which needs
Pulumi's engine: `update` records what it was asked to replace and applies the given change to the outputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RecordedStack:
    recorded: dict[str, Any]
    resources: list[str] = field(default_factory=list)
    on_update: Callable[[dict[str, Any], list[str]], None] | None = None
    replaced: list[list[str]] = field(default_factory=list)

    def outputs(self) -> dict[str, Any]:
        return dict(self.recorded)

    def urns(self) -> list[str]:
        return list(self.resources)

    def update(self, replace: list[str]) -> None:
        self.replaced.append(list(replace))
        if self.on_update is None:
            raise AssertionError("this recorded stack cannot be updated")
        self.on_update(self.recorded, replace)

"""What the operation commands ask of a deployed Pulumi stack, behind one small interface: its outputs (secrets
shown), its resources' URNs, and an update that replaces some of them (`pulumi up --replace URN`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, Protocol

from mlspec.cli.common import CommandError
from mlspec.cli.output import EXIT_FAILED


class StackState(Protocol):
    def outputs(self) -> dict[str, Any]:
        """The stack's outputs as plain values, secrets included."""
        ...

    def urns(self) -> list[str]:
        """The URN of every resource in the stack's state."""
        ...

    def update(self, replace: list[str]) -> None:
        """Run an update that replaces the resources named (and whatever depends on them)."""
        ...


class PulumiStackState:
    """The stack through Pulumi's Automation API (the workspace's project and file backend, see stack_of)."""

    def __init__(self, args: argparse.Namespace) -> None:
        from mlspec.cli.pulumi_commands import stack_of

        self.stack = stack_of(args)

    def outputs(self) -> dict[str, Any]:
        from pulumi import automation as auto

        try:
            return {name: value.value for name, value in self.stack.outputs().items()}
        except auto.CommandError as error:
            raise CommandError(f"pulumi could not read the stack's outputs: {error}", EXIT_FAILED) from None

    def urns(self) -> list[str]:
        deployment = self.stack.export_stack().deployment or {}
        return [resource["urn"] for resource in deployment.get("resources", [])]

    def update(self, replace: list[str]) -> None:
        from pulumi import automation as auto

        try:
            self.stack.up(replace=replace, on_output=lambda line: print(line, flush=True))
        except auto.CommandError as error:
            raise CommandError(f"pulumi up failed: {str(error).strip().splitlines()[-1]}", EXIT_FAILED) from None


# Which stack state a command reads; tests put a recorded one here, as Pulumi's engine cannot run in them.
opener: Callable[[argparse.Namespace], StackState] = PulumiStackState


def open_stack(args: argparse.Namespace) -> StackState:
    return opener(args)


def output(state: StackState, name: str, why: str) -> Any:
    """One output of the stack, or a CommandError saying it is missing and why it was wanted."""
    found = state.outputs()
    if name not in found:
        raise CommandError(f"the stack has no output {name} ({why}): run `mlspec up` with this stack", EXIT_FAILED)
    return found[name]

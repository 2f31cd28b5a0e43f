"""Which stack a local workspace folder belongs to: one folder holds the deployment of one stack at a time."""

from __future__ import annotations

import os

from mlspec.backends.local.paths import WorkspacePaths

CLAIM_FILE = "stack"  # in the workspace folder: the name of the stack whose `up` deployed it


def recorded_stack(paths: WorkspacePaths) -> str | None:
    """The stack the workspace's deployment belongs to; None when nothing is deployed or no stack deployed it."""
    if not paths.state_db.exists():
        return None  # an empty folder (or one `down` left) belongs to no one
    try:
        return (paths.root / CLAIM_FILE).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def conflict(paths: WorkspacePaths, stack: str | None) -> str | None:
    """Why `stack` may not act on this workspace, or None. A deployment made without a stack is adopted by the
    first stack that acts on it: it is the same spec on the same machine, and the stack names it from then on."""
    recorded = recorded_stack(paths)
    if recorded is None or recorded == stack:
        return None
    asked = f"stack '{stack}'" if stack else "no stack"
    return (f"the local workspace {paths.root} holds the deployment of stack '{recorded}', and this command is for "
            f"{asked}: pass --stack {recorded}, or remove it first with `mlspec down --stack {recorded}`")


def claim(paths: WorkspacePaths, stack: str | None) -> None:
    """Record that `stack` deploys this workspace (before `up` starts anything); no stack: a stale record from an
    `up` that was declined before it deployed anything is dropped."""
    if stack is None:
        release(paths)
        return
    paths.create()
    marker = paths.root / CLAIM_FILE
    partial = marker.with_name(f".{CLAIM_FILE}.{os.getpid()}")
    with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        handle.write(stack + "\n")  # owner-only, like every file of the workspace
    os.replace(partial, marker)


def release(paths: WorkspacePaths) -> None:
    """Forget the stack once `down` removed everything it deployed."""
    (paths.root / CLAIM_FILE).unlink(missing_ok=True)

"""Reasons for a change, in the user's terms: which field, file or upstream resource changed."""

from __future__ import annotations

from typing import Any

_MAX_VALUE = 40


def _short(value: Any) -> str:
    text = str(value) if not isinstance(value, str) else value
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def field_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """'inputs.C: 1.0 → 2.0', 'command changed', 'max_nodes: 2 → 3' for every leaf that differs."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            out.extend(field_changes(before, after, f"{path}."))
        elif before is None:
            out.append(f"{path} added")
        elif after is None:
            out.append(f"{path} removed")
        elif isinstance(after, str) and (len(after) > _MAX_VALUE or "\n" in after):
            out.append(f"{path} changed")
        else:
            out.append(f"{path}: {_short(before)} → {_short(after)}")
    return out


def file_changes(old: dict[str, str], new: dict[str, str], limit: int = 3) -> list[str]:
    """'code changed (src/train.py, src/util.py)' style summaries of changed files."""
    changed = sorted(f for f in set(old) | set(new) if old.get(f) != new.get(f))
    if not changed:
        return []
    shown = ", ".join(changed[:limit]) + (f" and {len(changed) - limit} more" if len(changed) > limit else "")
    return [f"files changed ({shown})"]

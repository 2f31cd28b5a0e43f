"""Which fields of two generated resources differ, as short paths (`traffic.blue`, `spec.replicas`)."""

from __future__ import annotations

import json
import re
from typing import Any

SHOWN = 5  # fields listed before the rest are counted ("and N more")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_ABSENT = object()


def changed_paths(old: Any, new: Any, path: str = "") -> list[str]:
    """Every leaf path where `old` and `new` differ, in `old`'s key order then `new`'s added keys. Lists of the same
    length are compared item by item; JSON documents held in strings (a ConfigMap's gateway.json) field by field, so
    that a traffic shift reads as the weights that moved rather than as a changed blob."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[str] = []
        for key in [*old, *(k for k in new if k not in old)]:
            found += changed_paths(old.get(key, _ABSENT), new.get(key, _ABSENT), join(path, str(key)))
        return found
    if isinstance(old, list | tuple) and isinstance(new, list | tuple) and len(old) == len(new):
        return [p for i, (a, b) in enumerate(zip(old, new, strict=True)) for p in changed_paths(a, b, f"{path}[{i}]")]
    if isinstance(old, str) and isinstance(new, str):
        documents = _json_object(old), _json_object(new)
        if documents[0] is not None and documents[1] is not None:
            return changed_paths(documents[0], documents[1], path)
    return [path or "."]


def summarize(paths: list[str], shown: int = SHOWN) -> tuple[str, ...]:
    """`paths` without repeats, at most `shown` of them, the last place saying how many more there are."""
    unique = list(dict.fromkeys(paths))
    if len(unique) <= shown:
        return tuple(unique)
    return (*unique[:shown - 1], f"and {len(unique) - shown + 1} more")


def join(path: str, key: str) -> str:
    """`path.key`, or `path["key"]` for a key that is not a plain name (a file, a label)."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None

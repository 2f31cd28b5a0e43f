"""The gateway's own answers: JSON bodies, errors, and 405s that say which methods a route takes."""

from __future__ import annotations

from typing import Any

import orjson

from mlspec.runtime.httpserver import Answer, Headers

JSON = (b"content-type", b"application/json")
RETRY_AFTER = (b"retry-after", b"1")  # a 429 or a 503 that passes: worth retrying soon


def json_answer(status: int, payload: Any, extra: Headers | None = None) -> Answer:
    return status, [JSON, *(extra or ())], orjson.dumps(payload)


def error(status: int, message: str, extra: Headers | None = None) -> Answer:
    return json_answer(status, {"error": message}, extra)


def wrong_method(path: bytes, method: bytes, allowed: tuple[bytes, ...]) -> Answer:
    """405 with Allow, as RFC 9110 asks."""
    methods = " or ".join(m.decode() for m in allowed)
    return error(405, f"{path.decode('latin-1')} takes {methods}, not {method.decode('latin-1')}",
                 [(b"allow", b", ".join(allowed))])

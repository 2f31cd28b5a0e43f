"""What a running gateway reports about itself, asked with short timeouts so a dead or hung one never stalls a plan."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

ASK_TIMEOUT_S = 0.5  # a live gateway answers /health in milliseconds; one that does not is reported, not waited on


def gateway_health(url: str, timeout: float = ASK_TIMEOUT_S) -> dict[str, Any] | None:
    """The gateway's /health answer, or None when it does not answer in time."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            answer = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None

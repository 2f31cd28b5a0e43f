"""What a running gateway reports about itself, asked with short timeouts so a dead or hung one never stalls a plan."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from mlspec.backends.local.context import StepFailed

ASK_TIMEOUT_S = 0.5  # a live gateway answers /health in milliseconds; one that does not is reported, not waited on


def gateway_health(url: str, timeout: float = ASK_TIMEOUT_S) -> dict[str, Any] | None:
    """The gateway's /health answer, or None when it does not answer in time."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            answer = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def wait_routing(url: str, digest: str, who: str, timeout: float = 10.0) -> None:
    """Wait until the gateway serves the routing just written (it reloads its file within half a second): only then
    do old replicas stop, and a refresh right after `up` finds the gateway as recorded."""
    deadline = time.monotonic() + timeout
    while True:
        health = gateway_health(url)
        if health is not None and health.get("config", digest) == digest:  # no digest: a gateway of an older mlspec
            return
        if time.monotonic() > deadline:
            raise StepFailed(f"{who}: the gateway at {url} did not take up its new configuration within "
                             f"{timeout:.0f}s; see its log")
        time.sleep(0.05)

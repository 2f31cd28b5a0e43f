"""The engine's side of a gateway's control channel (an owner-only Unix socket): push a config and wait for its
acknowledgement, read the gateway's own measurements."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from typing import Any

from mlspec.backends.local.context import StepFailed
from mlspec.runtime.sockets import UnixHTTPConnection

TIMEOUT_S = 10.0  # a live gateway answers in milliseconds; one that takes this long is reported
CONNECT_WAIT_S = 10.0  # a gateway just (re)started opens its control socket within this


def _call(path: Path, method: str, route: str, body: bytes | None = None,
          timeout: float = TIMEOUT_S) -> tuple[int, dict[str, Any]]:
    connection = UnixHTTPConnection(str(path), timeout)
    try:
        connection.request(method, route, body=body, headers={"content-type": "application/json"} if body else {})
        response = connection.getresponse()
        status, raw = response.status, response.read()
    finally:
        connection.close()
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = {"error": raw[:300].decode(errors="replace")}
    return status, answer if isinstance(answer, dict) else {"answer": answer}


def _call_when_up(path: Path, method: str, route: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
    """Like _call, waiting (briefly) for a gateway that is starting to open its socket."""
    deadline = time.monotonic() + CONNECT_WAIT_S
    while True:
        try:
            return _call(path, method, route, body)
        except (FileNotFoundError, ConnectionRefusedError) as error:
            if time.monotonic() > deadline:
                raise StepFailed(f"the gateway's control socket {path} does not answer ({error.strerror}); is the "
                                 "gateway running? see its log") from None
            time.sleep(0.05)
        except (OSError, http.client.HTTPException) as error:
            raise StepFailed(f"the gateway's control socket {path} failed: {error}") from None


def configure(path: Path, config: dict[str, Any]) -> str:
    """Give the gateway `config`; returns its routing digest once the gateway answers that it routes by it (only
    then may replicas it no longer lists stop)."""
    status, answer = _call_when_up(path, "PUT", "/config", json.dumps(config).encode())
    if status != 200:
        raise StepFailed(f"the gateway refused its new configuration ({status}): {answer.get('error', answer)}")
    digest = answer.get("config")
    if not isinstance(digest, str):
        raise StepFailed(f"the gateway acknowledged its configuration without a digest: {answer}")
    return digest


def stats(path: Path) -> dict[str, Any]:
    """The gateway's own measurements: {"deployments": {NAME: {in_flight, queued, held, requests_total, replicas,
    ready}}, "time": monotonic seconds}."""
    status, answer = _call_when_up(path, "GET", "/stats")
    if status != 200:
        raise StepFailed(f"the gateway's /stats answered {status}: {answer.get('error', answer)}")
    return answer


def traffic(path: Path) -> dict[str, Any] | None:
    """The gateway's traffic counts now (a snapshot as its history file holds them); None when it does not answer."""
    try:
        status, answer = _call(path, "GET", "/traffic", timeout=2.0)
    except (OSError, http.client.HTTPException):
        return None
    return answer if status == 200 else None

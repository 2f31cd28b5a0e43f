"""The per-endpoint secret a gateway adds to what it forwards, so a replica answers its own gateway alone."""

from __future__ import annotations

import hmac
import os

HEADER = b"x-mlspec-internal-token"
ENV = "MLSPEC_INTERNAL_TOKEN"  # the variable that carries it into the gateway's and the replicas' containers
MIN_LENGTH = 32


class TokenError(Exception):
    """The variable named for the token is unset, or too short to be a secret."""


def from_env(name: str) -> bytes:
    """The token in variable `name`; taken from the environment, never the command line, which `ps` shows."""
    value = os.environ.get(name, "")
    if len(value) < MIN_LENGTH:
        raise TokenError(f"${name} must hold the endpoint's internal token (at least {MIN_LENGTH} characters); "
                         f"it is {'unset' if not value else 'too short'}")
    return value.encode()


def matches(offered: bytes | None, token: bytes) -> bool:
    """Compared in constant time: the answer's timing never tells how much of a guess was right."""
    return offered is not None and hmac.compare_digest(offered, token)

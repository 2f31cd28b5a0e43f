"""Endpoint key hashes: what a gateway is given instead of the keys themselves."""

from __future__ import annotations

import hashlib


def key_hash(key: str) -> str:
    """The SHA-256 hex digest a gateway's `key_hashes` holds for one key."""
    return hashlib.sha256(key.encode()).hexdigest()

"""Endpoint keys: generated once, readable only by their owner; the gateway sees only their hashes."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from mlspec.backends.local.gateway_control import configure
from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.replica_sockets import control_socket
from mlspec.runtime.keys import key_hash

SLOTS = ("primary", "secondary")


def keys_file(paths: WorkspacePaths, endpoint: str) -> Path:
    return paths.endpoint(endpoint) / "keys.json"


def gateway_config(paths: WorkspacePaths, endpoint: str) -> Path:
    return paths.endpoint(endpoint) / "gateway.json"


def _write_private(path: Path, value: object, indent: int | None = None) -> None:
    """Write JSON readable by its owner only, whole or not at all (readers never see half a file)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)  # O_CREAT's mode applies only to a file it creates
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by other users
    with os.fdopen(fd, "w") as handle:
        json.dump(value, handle, indent=indent)
    tmp.replace(path)


def load_keys(paths: WorkspacePaths, endpoint: str) -> dict[str, str]:
    """The endpoint's keys, generated on first use."""
    path = keys_file(paths, endpoint)
    if path.exists():
        return dict(json.loads(path.read_text()))
    keys = {slot: secrets.token_urlsafe(32) for slot in SLOTS}
    _write_private(path, keys)
    return keys


def key_hashes(keys: dict[str, str]) -> list[str]:
    return [key_hash(key) for key in keys.values()]


def write_json_atomically(path: Path, value: object) -> None:
    """Readers (a gateway starting) never see half a file; only the owner can read it."""
    _write_private(path, value, indent=2)


def rotate(paths: WorkspacePaths, endpoint: str, slot: str) -> dict[str, str]:
    """Replace one key. The running gateway takes the new key set through its control channel before this returns,
    so the new key works (and the old one is refused) as soon as the caller has it; the other key keeps working."""
    keys = load_keys(paths, endpoint)
    keys[slot] = secrets.token_urlsafe(32)
    _write_private(keys_file(paths, endpoint), keys)
    config_path = gateway_config(paths, endpoint)
    if config_path.exists():
        config = json.loads(config_path.read_text())
        config["key_hashes"] = key_hashes(keys)
        write_json_atomically(config_path, config)  # a gateway that restarts starts from it
        control = control_socket(paths, endpoint)
        if control.exists():  # no socket: no gateway runs, and the next one reads the file
            configure(control, config)
    return keys

"""Where an endpoint's Unix sockets live: an owner-only folder of the workspace (or a short one when that path is
too long for a socket address), one socket per replica and one for the gateway's control channel."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.runtime.sockets import socket_folder

NAME_MAX = 48  # the longest socket file name made below: 20 + 1 + 12 + 1 + 4 digits + ".sock"
CONTROL = "gateway.sock"


def socket_dir(paths: WorkspacePaths, endpoint: str) -> Path:
    """.mlspec/sockets/ENDPOINT (0700), or $XDG_RUNTIME_DIR|/tmp/mlspec-UID-HASH when that is too long."""
    return socket_folder(paths.root / "sockets" / endpoint, NAME_MAX)


def control_socket(paths: WorkspacePaths, endpoint: str) -> Path:
    return socket_dir(paths, endpoint) / CONTROL


def replica_socket(paths: WorkspacePaths, endpoint: str, deployment: str, generation: str, index: int) -> Path:
    """One per replica: the deployment's name (shortened) for people, a digest so that names never collide."""
    digest = hashlib.sha256(f"{deployment}/{generation}".encode()).hexdigest()[:12]
    return socket_dir(paths, endpoint) / f"{deployment[:20]}-{digest}-{index}.sock"

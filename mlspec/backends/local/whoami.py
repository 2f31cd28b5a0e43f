"""Who and where this process is, as a shared lock and a published snapshot name it to people on other machines."""

from __future__ import annotations

import getpass
import os
import socket
from pathlib import Path


def user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry
        return f"uid {os.getuid()}"


def host() -> str:
    return socket.gethostname() or "unknown host"


def user_at_host() -> str:
    return f"{user()}@{host()}"


def machine_mark() -> str:
    """This boot of this machine and this pid namespace: processes with the same mark see each other's pids, so one
    whose pid is gone has ended (host names alone repeat across containers and CI runners). Empty where unknown."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return f"{boot} {namespace}"

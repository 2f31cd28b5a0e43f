"""Reading /proc/PID/stat: the fields of live processes, for process-group and process-tree bookkeeping."""

from __future__ import annotations

import os
from collections.abc import Iterator


def stat_fields(pid: int | str) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, pgrp, ...), or None when it is gone.

    The command name may hold spaces and parentheses, hence the split after its last ')'.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2:].split()


def live_processes() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, stat fields) of every process that is not a zombie; raises OSError where there is no procfs."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = stat_fields(entry)
        if fields is not None and fields[0] != b"Z":
            yield int(entry), fields

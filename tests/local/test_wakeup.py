"""Waking the supervisor between ticks: a poke cuts its sleep short; poking with nobody listening is harmless."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.wakeup import WakeUp, wake


def test_a_poke_cuts_the_wait_short_and_is_answered_once(tmp_path: Path) -> None:
    paths = WorkspacePaths(tmp_path / ".mlspec")
    paths.create()
    wake(paths)  # nobody listens yet: nothing happens, nothing blocks
    wakeup = WakeUp(paths)
    try:
        started = time.monotonic()
        assert not wakeup.wait(0.1) and time.monotonic() - started >= 0.09
        for _ in range(3):
            wake(paths)  # several pokes before it looks: one wake-up
        assert wakeup.wait(5.0)
        assert not wakeup.wait(0.05)
        threading.Timer(0.1, wake, [paths]).start()
        started = time.monotonic()
        assert wakeup.wait(10.0) and time.monotonic() - started < 5.0  # cut short, with room for a busy machine
    finally:
        wakeup.close()
    wake(paths)  # closed: again harmless

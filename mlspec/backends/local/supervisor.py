"""The per-workspace supervisor: keeps declared processes running, restarts crashes with backoff.

Run as `python -m mlspec.backends.local.supervisor WORKSPACE_DIR`; `mlspec up` starts it when needed.
It outlives `mlspec up`, reads the desired processes from the state store and records what it observes.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlspec.backends.local.health import Watch
from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.processes import ID_VAR, WORKSPACE_VAR, is_ours, stop_group, workspace_processes
from mlspec.backends.local.state import ProcessRow, StateStore

TICK = 0.25
MAX_BACKOFF = 30.0
IDLE_EXIT = 2.0  # with nothing to supervise for this long, exit


class Supervisor:
    def __init__(self, paths: WorkspacePaths):
        self.paths = paths
        self.workspace = str(paths.root.resolve())
        self.store = StateStore(paths.state_db)
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.not_before: dict[str, float] = {}
        self.watch = Watch()  # liveness probes and idle instances, answered on a thread of their own

    def log(self, message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    def sweep_orphans(self) -> None:
        """Kill processes of this workspace that no desired row accounts for (e.g. a spawn cut short by kill -9)."""
        wanted = {row.id for row in self.store.processes() if row.desired}
        for pid, process_id in workspace_processes(self.workspace).items():
            if process_id not in wanted:
                self.log(f"stopping orphan {process_id} (pid {pid})")
                stop_group(pid)

    def start(self, row: ProcessRow) -> None:
        self.stop_running(row.id)
        env = {**os.environ, **row.env, ID_VAR: row.id, WORKSPACE_VAR: self.workspace}
        Path(row.log).parent.mkdir(parents=True, exist_ok=True)
        with open(row.log, "ab") as log:
            proc = subprocess.Popen(row.argv, cwd=row.cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.children[row.id] = proc
        self.store.observe(row.id, pid=proc.pid, started=time.time(), state="running")
        self.log(f"started {row.id} (pid {proc.pid})")

    def stop_running(self, process_id: str) -> None:
        """At most one live process per id: one still running under this id (a row re-declared after `up` was
        killed mid-step forgets its pid) is stopped before another starts, or it would be an orphan nobody tracks."""
        child = self.children.pop(process_id, None)
        if child is not None and child.poll() is None:
            stop_group(child.pid)
        for pid, found in workspace_processes(self.workspace).items():
            if found == process_id:
                self.log(f"stopping the earlier {process_id} (pid {pid})")
                stop_group(pid)

    def exited(self, row: ProcessRow) -> int | None:
        """The exit code if the process is gone, None while it runs."""
        child = self.children.get(row.id)
        if child is not None:
            code = child.poll()
            if code is None:
                return None
            del self.children[row.id]
            return code
        return None if is_ours(row.pid, row.id) else -1

    def tick(self) -> bool:
        """One reconciliation pass; False when there is nothing left to supervise."""
        rows = self.store.processes()
        self.act_on_watch(rows)
        now = time.time()
        for row in rows:
            if not row.desired:
                if row.pid and (row.id in self.children or is_ours(row.pid, row.id)):
                    stop_group(row.pid)
                    self.children.pop(row.id, None)
                    self.log(f"stopped {row.id}")
                self.store.forget_process(row.id)
                continue
            if row.pid is None:
                if row.state != "stopped" and now >= self.not_before.get(row.id, 0):
                    self.start(row)
                continue
            code = self.exited(row)
            if code is not None:
                self.restart_later(row, code, f"exited with {code}", now)
        return any(row.desired and row.state != "stopped" for row in rows) or bool(self.children)

    def restart_later(self, row: ProcessRow, code: int, why: str, now: float) -> None:
        delay = min(MAX_BACKOFF, 2.0 ** min(row.restarts, 5))
        self.not_before[row.id] = now + delay
        self.store.observe(row.id, pid=None, restarts=row.restarts + 1, last_exit=code, state="restarting")
        self.store.event(row.owner, f"{row.id} {why}; restarting in {delay:.0f}s")
        self.log(f"{row.id} {why}; restarting in {delay:.0f}s")

    def act_on_watch(self, rows: list[ProcessRow]) -> None:
        """A process that failed its liveness probe is stopped, and restarted like a crash; an idle instance is
        stopped and marked 'stopped', so it stays down until `mlspec compute start`."""
        current = {row.id: row for row in rows}
        for process_id, pid, kind, what in self.watch.verdicts():
            row = current.get(process_id)
            if row is None or row.pid != pid or not row.desired:
                continue  # it changed since the verdict: nothing to act on
            self.children.pop(row.id, None)
            stop_group(pid)
            if kind == "idle":
                self.store.observe(row.id, pid=None, state="stopped")
                self.store.event(row.owner, f"{row.id} {what}; stopped")
                self.log(f"{row.id} (pid {pid}) {what}; stopped")
                row.pid, row.state = None, "stopped"
            else:
                self.restart_later(row, -signal.SIGTERM, what, time.time())
                row.pid = None
        self.watch.update(rows)

    def run(self) -> None:
        self.sweep_orphans()
        idle_since: float | None = None
        while True:
            busy = self.tick()
            if busy:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_EXIT:
                self.log("nothing to supervise; exiting")
                return
            time.sleep(TICK)


def running(paths: WorkspacePaths) -> bool:
    """Whether a supervisor holds this workspace's supervisor lock."""
    paths.supervisor_lock.parent.mkdir(parents=True, exist_ok=True)
    with open(paths.supervisor_lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def ensure_running(paths: WorkspacePaths) -> None:
    """Start the supervisor in its own session unless one is already running."""
    if running(paths):
        return
    paths.logs.mkdir(parents=True, exist_ok=True)
    with open(paths.supervisor_log, "ab") as log:
        subprocess.Popen([sys.executable, "-m", "mlspec.backends.local.supervisor", str(paths.root.resolve())],
                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while not running(paths) and time.monotonic() < deadline:
        time.sleep(0.05)


def main() -> None:
    paths = WorkspacePaths(Path(sys.argv[1]))
    lock = open(paths.supervisor_lock, "a+")  # noqa: SIM115 - held for the supervisor's lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another supervisor already looks after this workspace
    Supervisor(paths).run()


if __name__ == "__main__":
    main()

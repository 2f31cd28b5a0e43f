"""`python -m mlspec.backends.local.autoscaler PLAN`: scales an endpoint's deployments from its gateway's own
measurements (one supervised process per endpoint, declared by `up` beside the gateway).

`up` writes the plan: per autoscaled deployment, the policy's settings and the replica rows of indexes 0..max-1
of the generation it runs. Each tick the scaler reads the gateway's `stats` over the control channel, feeds the
policy, and when the count it wants differs from the replicas declared: more are declared to the supervisor,
awaited until healthy, then pushed to the gateway; fewer are pushed first, and released (stopped, draining) only
once the gateway acknowledged that it no longer routes to them. Each change holds the workspace lock, so it never
interleaves with an `up` or `down`; a busy lock postpones it to a later tick.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlspec.backends.local.context import StepFailed
from mlspec.backends.local.gateway_control import configure, stats
from mlspec.backends.local.health import healthy
from mlspec.backends.local.keys import write_json_atomically
from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.state import LockTimeout, ProcessRow, StateStore, exclusive
from mlspec.backends.local.supervisor_start import ensure_running
from mlspec.runtime.scaling import Load, ScalingPolicy, ScalingSettings
from mlspec.runtime.sockets import split_url

TICK_S = 0.2
READY_KEPT = 10  # how many of the latest scale-ups' declared -> ready times the status shows
LOCK_WAIT_S = 2.0  # an `up` holds the lock for its whole apply: a scaling step waits this long, then a later tick


def plan_path(paths: WorkspacePaths, endpoint: str) -> Path:
    return paths.root / "autoscale" / f"{endpoint}.json"


def status_path(paths: WorkspacePaths, endpoint: str) -> Path:
    return paths.root / "autoscale" / f"{endpoint}.status.json"


def write_plan(paths: WorkspacePaths, endpoint: str, owner: str, control: Path, config_path: Path,
               deployments: dict[str, dict[str, Any]]) -> Path:
    """deployments: NAME -> {"settings": ScalingSettings, "generation": str, "rows": [ProcessRow], "deadline": s}."""
    path = plan_path(paths, endpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomically(path, {
        "workspace": str(paths.root.resolve()), "endpoint": endpoint, "owner": owner, "control": str(control),
        "config": str(config_path), "deployments": {
            name: {"settings": asdict(d["settings"]), "generation": d["generation"], "deadline": d["deadline"],
                   "rows": [asdict(row) for row in d["rows"]]} for name, d in deployments.items()}})
    return path


def read_status(paths: WorkspacePaths, endpoint: str) -> dict[str, Any]:
    """{deployment: {"current": N, "desired": N, "load": X, "ready_s": [S, ...]}} as the endpoint's scaler last
    wrote it (ready_s: the latest scale-ups, from declaring the replicas to all of them healthy); {} if none."""
    try:
        answer = json.loads(status_path(paths, endpoint).read_text())
    except (OSError, ValueError):
        return {}
    return answer if isinstance(answer, dict) else {}


@dataclass
class Scaled:
    name: str
    generation: str
    rows: list[ProcessRow]  # index 0..max-1
    deadline: float
    policy: ScalingPolicy
    ready_s: list[float] = field(default_factory=list)


class Autoscaler:
    def __init__(self, plan: Path) -> None:
        self.plan_file = plan
        self.stamp: float | None = None
        self.scaled: dict[str, Scaled] = {}
        self.plan: dict[str, Any] = {}
        self.load_plan()
        self.paths = WorkspacePaths(Path(self.plan["workspace"]))
        self.store = StateStore(self.paths.state_db)
        self.store.db.execute("PRAGMA busy_timeout=5000")  # the supervisor and `up` write it too

    def load_plan(self) -> bool:
        """(Re)read the plan when `up` rewrote it; a deployment whose generation changed starts a new policy."""
        stamp = self.plan_file.stat().st_mtime_ns
        if stamp == self.stamp:
            return False
        self.stamp, self.plan = stamp, json.loads(self.plan_file.read_text())
        previous, self.scaled = self.scaled, {}
        for name, spec in self.plan["deployments"].items():
            rows = [ProcessRow(**row) for row in spec["rows"]]
            old = previous.get(name)
            if old is not None and old.generation == spec["generation"]:
                old.rows, old.deadline = rows, float(spec["deadline"])
                old.policy.settings = ScalingSettings(**spec["settings"])
                self.scaled[name] = old
                continue
            settings = ScalingSettings(**spec["settings"])
            self.scaled[name] = Scaled(name, spec["generation"], rows, float(spec["deadline"]),
                                       ScalingPolicy(settings, 0))
        return True

    def declared(self, scaled: Scaled) -> int:
        """How many of the deployment's replicas are declared now (a prefix of its rows, as up and this keep it)."""
        wanted = {row.id for row in self.store.processes(self.plan["owner"]) if row.desired}
        return sum(row.id in wanted for row in scaled.rows)

    def tick(self) -> None:
        if self.load_plan():
            for scaled in self.scaled.values():
                scaled.policy.current = self.declared(scaled)
                self.reconcile(scaled)
        measured = stats(Path(self.plan["control"]))["deployments"]
        now = time.monotonic()
        status: dict[str, Any] = {}
        for name, scaled in self.scaled.items():
            found = measured.get(name, {})
            scaled.policy.observe(now, Load(int(found.get("in_flight", 0)), int(found.get("queued", 0)),
                                            int(found.get("held", 0)), int(found.get("requests_total", 0))))
            desired = scaled.policy.decide(now)
            current = self.declared(scaled)
            if desired != current:
                current = self.scale(scaled, current, desired)
            status[name] = {"current": current, "desired": desired, "load": round(scaled.policy.average(), 2),
                            "ready_s": scaled.ready_s}
        write_json_atomically(status_path(self.paths, self.plan["endpoint"]), status)

    def locked(self) -> AbstractContextManager[None]:
        """The workspace lock, marked brief: an `up` waits for it rather than failing."""
        return exclusive(self.paths.lock, LOCK_WAIT_S, "mlspec up or down", brief=True)

    def scale(self, scaled: Scaled, current: int, desired: int) -> int:
        """Move to `desired` replicas; the count declared afterwards. The workspace lock is held to declare, push
        and release, never while new replicas start, so an `up` waits for it milliseconds at most."""
        stamp = self.stamp
        try:
            if desired > current:
                with self.locked():
                    current = self.declared(scaled)  # up may have changed it meanwhile
                    for row in scaled.rows[current:desired]:
                        self.store.want_process(row)
                declared = time.monotonic()
                ensure_running(self.paths)  # and wakes it: the replicas start now, not at its next tick
                self.wait_healthy(scaled, scaled.rows[current:desired])
                scaled.ready_s = [*scaled.ready_s, round(time.monotonic() - declared, 3)][-READY_KEPT:]
                self.log(f"{scaled.name}: {desired - current} replica(s) ready {scaled.ready_s[-1]:.2f}s after "
                         "they were declared")
            with self.locked():
                if self.plan_file.stat().st_mtime_ns != stamp:
                    return self.declared(scaled)  # an up replaced the plan meanwhile: decide again from it
                before = self.declared(scaled)
                self.push(scaled, scaled.rows[:desired])
                if desired < before:
                    self.store.release_processes(self.plan["owner"], self.keep(scaled, desired))
            self.log(f"{scaled.name}: {current} -> {desired} replica(s) (load {scaled.policy.average():.1f})")
            return desired
        except LockTimeout:
            scaled.policy.current = current  # decided again on a later tick
        except StepFailed as error:
            self.log(f"{scaled.name}: scaling to {desired} failed: {error}")
            with contextlib.suppress(LockTimeout), self.locked():
                self.store.release_processes(self.plan["owner"], self.keep(scaled, current))
            scaled.policy.current = current
        return current

    def reconcile(self, scaled: Scaled) -> None:
        """A scaler stopped between declaring replicas and pushing them (killed, restarted) left the gateway with
        another set than the one declared: push the declared one, once healthy."""
        count = scaled.policy.current
        config = json.loads(Path(self.plan["config"]).read_text())
        routed = config["deployments"].get(scaled.name, {}).get("replicas", [])
        if routed != [split_url(str(row.health))[0] for row in scaled.rows[:count]]:
            try:
                self.wait_healthy(scaled, scaled.rows[:count])
                with self.locked():
                    self.push(scaled, scaled.rows[:count])
            except (LockTimeout, StepFailed) as error:
                self.log(f"{scaled.name}: could not route the {count} declared replica(s) yet: {error}")

    def keep(self, scaled: Scaled, count: int) -> set[str]:
        mine = {row.id for row in scaled.rows}
        others = {row.id for row in self.store.processes(self.plan["owner"]) if row.desired and row.id not in mine}
        return others | {row.id for row in scaled.rows[:count]}

    def wait_healthy(self, scaled: Scaled, rows: list[ProcessRow]) -> None:
        deadline = time.monotonic() + scaled.deadline
        waiting = [row for row in rows if row.health]
        while waiting:
            waiting = [row for row in waiting if not healthy(str(row.health), timeout=1.0)]
            if waiting and time.monotonic() > deadline:
                raise StepFailed(f"{len(waiting)} new replica(s) not healthy within {scaled.deadline:g}s")
            if waiting:
                time.sleep(0.02)

    def push(self, scaled: Scaled, rows: list[ProcessRow]) -> None:
        """The gateway's config with this deployment's replica set replaced; the file first (a restarted gateway
        starts from it), then the control channel, which answers once the set is in use."""
        config_path = Path(self.plan["config"])
        config = json.loads(config_path.read_text())
        config["deployments"][scaled.name]["replicas"] = [split_url(str(row.health))[0] for row in rows]
        write_json_atomically(config_path, config)
        configure(Path(self.plan["control"]), config)

    def log(self, message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    def run(self) -> None:
        while True:
            try:
                self.tick()
            except StepFailed as error:  # the gateway restarting: measure again next tick
                self.log(str(error))
                time.sleep(1.0)
            except FileNotFoundError:
                self.log("the plan is gone: the endpoint was deleted")
                return
            time.sleep(TICK_S)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mlspec.backends.local.autoscaler PLAN", file=sys.stderr)
        return 2
    Autoscaler(Path(args[0])).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

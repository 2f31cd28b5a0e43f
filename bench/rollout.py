"""Rollout benchmark: requests failed while an endpoint changes under load, per kind of change.

Run: PYTHONPATH=. .venv/bin/python bench/rollout.py [--repeats 5] [--connections 16]

A copy of examples/iris is brought up with `mlspec up` in a temporary folder; 16 keep-alive connections (an asyncio
raw-socket client) send single-row requests to the endpoint for the whole of each event:
  traffic    the blue/green split changes (no replica is replaced)
  scale-up   blue's instance_count 1 -> 2
  kill-9     one of blue's two replicas is killed with SIGKILL; the supervisor restarts it
  scale-down blue's instance_count 2 -> 1
  model      the training job's input changes, so a new iris-clf version registers and blue serves it
  env        an environment variable of blue changes (new replicas, same model)
  keys       Azure's two-key rotation: the client uses key A; key B is regenerated; once that command returns the
             client moves to B; then A is regenerated. The client never uses a key that was revoked.
A failed request is any answer other than 2xx, or a connection error. Target: 0 failed per event, every repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ("traffic", "scale-up", "kill-9", "scale-down", "model", "env", "keys")
BODY = b'{"dataframe_split": {"columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"], ' \
       b'"data": [[5.1, 3.5, 1.4, 0.2]]}}'
SETTLE_S = 0.5  # load runs this long before and after each event's command


@dataclass
class Counts:
    ok: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def fail(self, why: str) -> None:
        self.failed += 1
        self.errors[why] = self.errors.get(why, 0) + 1


class Load:
    """Keep-alive clients that send for as long as `running` is set, counting into `counts` (swapped per event)."""

    def __init__(self, port: int, key: str, connections: int) -> None:
        self.port, self.key, self.connections = port, key, connections
        self.counts = Counts()
        self.running = True

    def request(self) -> bytes:
        return (f"POST /invocations HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
                f"authorization: Bearer {self.key}\r\ncontent-length: {len(BODY)}\r\n\r\n").encode() + BODY

    async def client(self) -> None:
        reader = writer = None
        while self.running:
            counts = self.counts
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                assert reader is not None
                writer.write(self.request())
                head = await reader.readuntil(b"\r\n\r\n")
                at = head.lower().find(b"content-length:")
                body = await reader.readexactly(int(head[at + 15:head.find(b"\r\n", at)]))
                status = int(head[9:12])
                if 200 <= status < 300:
                    counts.ok += 1
                else:
                    counts.fail(f"{status} " + re.sub(r"unix:\S*/", "unix:.../", body.decode(errors="replace"))[:160])
                if b"connection: close" in head.lower():
                    writer.close()
                    writer = None
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                counts.fail(f"connection: {type(error).__name__}")
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)
        if writer is not None:
            writer.close()


def cli(*args: str, timeout: float = 300) -> str:
    import subprocess

    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "mlspec.cli.main", *args], env=env, text=True,
                          capture_output=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"mlspec {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


async def acli(*args: str) -> str:
    return await asyncio.to_thread(cli, *args)


class Workspace:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.spec = folder / "mlspec.yaml"
        self.text = self.spec.read_text()

    def edit(self, pattern: str, replacement: str) -> None:
        text, count = re.subn(pattern, replacement, self.text, count=1, flags=re.M)
        if count != 1:
            raise SystemExit(f"bench: no {pattern!r} in the spec")
        self.text = text
        self.spec.write_text(text)

    async def up(self) -> None:
        await acli("up", str(self.folder), "--yes")

    def keys(self) -> dict[str, str]:
        return json.loads(cli("endpoint", "keys", "iris", str(self.folder), "--json"))  # type: ignore[no-any-return]

    def healthy(self, process_id: str) -> bool:
        from mlspec.backends.local.health import healthy
        from mlspec.backends.local.state import StateStore

        store = StateStore(self.folder / ".mlspec" / "state.db")
        try:
            row = next((r for r in store.processes() if r.id == process_id), None)
        finally:
            store.close()
        return bool(row and row.health and healthy(row.health))

    def replica_pids(self, deployment: str) -> dict[str, list[int]]:
        from mlspec.backends.local.processes import workspace_processes

        found: dict[str, list[int]] = {}
        for pid, process_id in workspace_processes(str((self.folder / ".mlspec").resolve())).items():
            if process_id.startswith(f"endpoint/iris/{deployment}/"):
                found.setdefault(process_id, []).append(pid)
        return found


async def kill_one(ws: Workspace) -> None:
    replicas = ws.replica_pids("blue")
    victim = sorted(replicas)[0]
    for pid in replicas[victim]:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the event lasts until the supervisor has it back, and it is ready
        await asyncio.sleep(0.2)
        back = ws.replica_pids("blue").get(victim)
        if back and set(back) != set(replicas[victim]) and await asyncio.to_thread(ws.healthy, victim):
            break
    await asyncio.sleep(1.0)


async def rotate(ws: Workspace, load: Load, slot_in_use: list[str]) -> None:
    using = slot_in_use[0]
    other = "secondary" if using == "primary" else "primary"
    fresh = json.loads(await acli("endpoint", "keys", "iris", str(ws.folder), "--regenerate", other, "--json"))
    load.key = fresh[other]  # the regenerated key, once the command has returned
    await acli("endpoint", "keys", "iris", str(ws.folder), "--regenerate", using, "--json")  # the old one goes
    slot_in_use[0] = other


async def run_events(ws: Workspace, load: Load, repeats: int, events: list[str]) -> dict[str, list[Counts]]:
    results: dict[str, list[Counts]] = {event: [] for event in events}
    slot = ["primary"]
    for repeat in range(repeats):
        for event in events:
            if event == "kill-9" and len(ws.replica_pids("blue")) < 2:  # one of two: scale blue up, uncounted
                ws.edit(r"(blue:\n    model: iris-clf@latest\n    instance_count:) 1", r"\g<1> 2")
                await ws.up()
            load.counts = counts = Counts()
            await asyncio.sleep(SETTLE_S)
            started = time.monotonic()
            if event == "traffic":
                ws.edit(r"^traffic: .*$", "traffic: {blue: 50, green: 50}" if repeat % 2 == 0 else
                        "traffic: {blue: 90, green: 10}")
                await ws.up()
            elif event == "scale-up":
                ws.edit(r"(blue:\n    model: iris-clf@latest\n    instance_count:) 1", r"\g<1> 2")
                await ws.up()
            elif event == "kill-9":
                await kill_one(ws)
            elif event == "scale-down":
                ws.edit(r"(blue:\n    model: iris-clf@latest\n    instance_count:) 2", r"\g<1> 1")
                await ws.up()
            elif event == "model":
                ws.edit(r"^  C: .*$", f"  C: {1.0 + 0.25 * (repeat + 1)}")
                await ws.up()
            elif event == "env":
                ws.edit(r"^(    instance_count: 1\n)(    environment_variables: .*\n)?",
                        rf"\g<1>    environment_variables: {{ROLLOUT: '{repeat}'}}\n")
                await ws.up()
            elif event == "keys":
                await rotate(ws, load, slot)
            await asyncio.sleep(SETTLE_S)
            results[event].append(counts)
            print(f"  repeat {repeat + 1} {event:<10} {time.monotonic() - started:5.1f}s  "
                  f"{counts.failed:>5} failed of {counts.ok + counts.failed:>7}"
                  + (f"  e.g. {next(iter(counts.errors))}" if counts.errors else ""), flush=True)
    return results


async def bench(ws: Workspace, connections: int, repeats: int, events: list[str]) -> dict[str, list[Counts]]:
    outputs = json.loads(cli("status", str(ws.folder), "--json"))["resources"]["endpoint/iris"]["outputs"]
    load = Load(int(outputs["port"]), ws.keys()["primary"], connections)
    clients = [asyncio.create_task(load.client()) for _ in range(connections)]
    try:
        await asyncio.sleep(1.0)  # warm-up, not counted
        return await run_events(ws, load, repeats, events)
    finally:
        load.running = False
        await asyncio.gather(*clients, return_exceptions=True)


def report(results: dict[str, list[Counts]]) -> None:
    print(f"\n{'event':<11} {'failed (per repeat)':<28} {'failed total':>12} {'requests':>10} {'target':>7}")
    for event, runs in results.items():
        failed = [c.failed for c in runs]
        sent = sum(c.ok + c.failed for c in runs)
        verdict = "ok" if not any(failed) else "MISS"
        print(f"{event:<11} {' '.join(map(str, failed)):<28} {sum(failed):>12} {sent:>10} {'0':>5} {verdict}")
        reasons: dict[str, int] = {}
        for counts in runs:
            for why, n in counts.errors.items():
                reasons[why] = reasons.get(why, 0) + n
        for why, n in sorted(reasons.items(), key=lambda item: -item[1])[:3]:
            print(f"{'':<11}   {n} x {why}")
    total = [c.ok + c.failed for runs in results.values() for c in runs]
    print(f"\nrequests per event: median {statistics.median(total):.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--events", nargs="+", choices=EVENTS, default=list(EVENTS),
                        help="a subset of the events, run in the usual order (kill-9 scales blue to 2 first)")
    args = parser.parse_args()

    import uvloop

    with tempfile.TemporaryDirectory(prefix="mlspec-rollout-") as tmp:
        folder = Path(tmp) / "iris"
        shutil.copytree(ROOT / "examples" / "iris", folder, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
        ws = Workspace(folder)
        print("mlspec up (first: trains and registers both models) ...", flush=True)
        cli("up", str(folder), "--yes")
        try:
            report(uvloop.run(bench(ws, args.connections, args.repeats, args.events)))
        finally:
            cli("down", str(folder), "--yes", timeout=120)


if __name__ == "__main__":
    main()

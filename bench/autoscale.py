"""Autoscaling on the local engine: examples/iris with deployment blue at `min_instances: 0, max_instances: 4`,
a step load of 1 -> 32 -> 1 keep-alive connections: time to the first answer from zero, time to scale up to 4,
failed requests (every answer but a 2xx, every connection error), and the time back to zero replicas after; and
each scale-up's replicas from declared (the row written) to ready, as the scaler measured them: the first from zero
starts afresh while the deployment's zygote warms, the later ones are forked from it.

    .venv/bin/python bench/autoscale.py [--high-seconds 20] [--target-concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BODY = b'{"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": [[5.1, 3.5, 1.4, 0.2]]}}'
MAX = 4


def mlspec(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    done = subprocess.run([sys.executable, "-m", "mlspec.cli.main", *args], capture_output=True, text=True, env=env,
                          timeout=600)
    if done.returncode != 0:
        sys.exit(f"mlspec {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


class Step:
    """Keep-alive clients sending one request after another; the count of clients can change while it runs."""

    def __init__(self, port: int, key: str) -> None:
        self.request = (f"POST /invocations HTTP/1.1\r\nhost: b\r\ncontent-type: application/json\r\n"
                        f"x-mlspec-deployment: blue\r\nauthorization: Bearer {key}\r\n"
                        f"content-length: {len(BODY)}\r\n\r\n").encode() + BODY
        self.port, self.ok, self.failed, self.wanted = port, 0, 0, 0
        self.first_answer: float | None = None
        self.errors: list[str] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def client(self, number: int) -> None:
        writer = None
        while number < self.wanted:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(self.request)
                head = await reader.readuntil(b"\r\n\r\n")
                found = re.search(rb"content-length: *(\d+)", head, re.I)
                body = await reader.readexactly(int(found.group(1)) if found else 0)
                if head.startswith(b"HTTP/1.1 2"):
                    self.ok += 1
                    self.first_answer = self.first_answer or time.monotonic()
                else:
                    self.failed += 1
                    self.errors.append((head.split(b"\r\n", 1)[0] + b" " + body[:160]).decode(errors="replace"))
            except (OSError, asyncio.IncompleteReadError) as error:
                self.failed += 1
                self.errors.append(repr(error))
                writer = None
        if writer is not None:
            writer.close()

    def resize(self, count: int) -> None:
        started, self.wanted = self.wanted, count
        for number in range(started, count):
            self.tasks.append(asyncio.get_running_loop().create_task(self.client(number)))


def blue(workspace: Path) -> dict[str, Any]:
    try:
        found = json.loads((workspace / ".mlspec" / "autoscale" / "iris.status.json").read_text())
        return dict(found["blue"])
    except (OSError, ValueError, KeyError):
        return {}


def replicas(workspace: Path) -> int:
    return int(blue(workspace).get("current", -1))


def forked(workspace: Path) -> int:
    """Replicas forked by a zygote, as the zygotes' logs name them."""
    return sum(path.read_text().count("forked replica") for path in (workspace / ".mlspec" / "logs").glob("zygote-*"))


async def run(workspace: Path, port: int, key: str, high_s: float, idle_limit_s: float) -> dict[str, float]:
    step = Step(port, key)
    figures: dict[str, float] = {}
    started = time.monotonic()
    step.resize(1)
    while step.first_answer is None and time.monotonic() - started < 120:
        await asyncio.sleep(0.01)
    figures["first answer from zero (s)"] = (step.first_answer or time.monotonic()) - started
    await asyncio.sleep(3)
    high = time.monotonic()
    step.resize(32)
    reached: float | None = None
    first_up: float | None = None
    most = 0
    while time.monotonic() - high < high_s:
        now = replicas(workspace)
        most = max(most, now)
        if first_up is None and now > 1:
            first_up = time.monotonic() - high
        if reached is None and now == MAX:
            reached = time.monotonic() - high
        await asyncio.sleep(0.1)
    figures["time to the first scale-up (s)"] = float("nan") if first_up is None else first_up
    figures[f"time to {MAX} replicas (s)"] = float("nan") if reached is None else reached
    figures["most replicas under load"] = most
    step.wanted = 1  # back to one connection: the others finish their request and stop
    await asyncio.sleep(5)
    step.wanted = 0
    await asyncio.wait_for(asyncio.gather(*step.tasks), 30)
    idle = time.monotonic()
    while replicas(workspace) != 0 and time.monotonic() - idle < idle_limit_s:
        await asyncio.sleep(0.2)
    figures["back to 0 replicas after the load (s)"] = time.monotonic() - idle if replicas(workspace) == 0 else \
        float("nan")
    figures["requests answered"] = step.ok
    figures["requests failed"] = step.failed
    ready = [float(s) for s in blue(workspace).get("ready_s", [])]
    if ready:
        figures["scale-up from zero: declared -> ready (s)"] = ready[0]
    if len(ready) > 1:
        figures["scale-ups after: declared -> ready, median (s)"] = statistics.median(ready[1:])
        figures["scale-ups after: declared -> ready, max (s)"] = max(ready[1:])
    figures["scale-ups"] = len(ready)
    figures["replicas forked by a zygote"] = forked(workspace)
    if step.errors:
        print("first failures:", *step.errors[:5], sep="\n  ")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--high-seconds", type=float, default=20.0, help="how long the 32 connections last")
    parser.add_argument("--target-concurrency", type=float, default=4.0)
    parser.add_argument("--scale-down-delay", default="5s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlspec-bench-autoscale-") as folder:
        workspace = Path(folder) / "iris"
        shutil.copytree(REPO / "examples" / "iris", workspace, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
        spec = workspace / "mlspec.yaml"
        text = spec.read_text()
        fixed = "    model: iris-clf@latest\n    instance_count: 1"
        assert fixed in text
        spec.write_text(text.replace(fixed, "    model: iris-clf@latest\n    autoscale: {min_instances: 0, "
                                     f"max_instances: {MAX}, target_concurrency: {args.target_concurrency}, "
                                     f"window: 2s, scale_down_delay: {args.scale_down_delay}}}", 1))
        try:
            mlspec("up", str(workspace), "--yes")
            outputs = json.loads(mlspec("status", str(workspace), "--json"))["resources"]["endpoint/iris"]["outputs"]
            key = json.loads(mlspec("endpoint", "keys", "iris", str(workspace), "--json"))["primary"]
            figures = asyncio.run(run(workspace, int(outputs["port"]), key, args.high_seconds, 90.0))
        finally:
            mlspec("down", str(workspace), "--yes")
    targets = {"requests failed": "0", "back to 0 replicas after the load (s)": "window + scale_down_delay + drain",
               "scale-ups after: declared -> ready, max (s)": "<= 0.3"}
    print(f"autoscale, iris blue: min 0, max {MAX}, target_concurrency {args.target_concurrency:g}; "
          f"1 -> 32 ({args.high_seconds:g} s) -> 1 connections")
    for name, value in figures.items():
        print(f"  {name:<40} {value:10.2f}   target {targets.get(name, '-')}")


if __name__ == "__main__":
    main()

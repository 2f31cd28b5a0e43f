"""Benchmark: `mlspec plan --base` on a generated 1,000-resource workspace in a git repository (target < 1 s).

Run: .venv/bin/python bench/plan_base.py [--resources 1000]
The base commit holds bench/spec_graph.py's workspace; the working tree then edits a training script, a
parameter, a data file and one endpoint's traffic. Each figure is the wall time of the real CLI in a fresh process
(start-up included, Markdown output), best and median of 5, beside `mlspec validate` of the same spec alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spec_graph import generate

TARGET_S = 1.0


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(folder), "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args],
                   check=True, capture_output=True)


# As installed: Python's bytecode cached (a shell that sets PYTHONDONTWRITEBYTECODE would time the compiler).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(command: list[str], cwd: Path, runs: int = 5) -> list[float]:
    subprocess.run(command, cwd=cwd, env=ENV, capture_output=True)  # warm: bytecode written, files cached
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True)
        times.append(time.perf_counter() - start)
        if done.returncode not in (0, 2):
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr.decode()}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        spec = generate(repo, args.resources)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "base")
        (repo / "src" / "train.py").write_text("print('train, better')\n")
        (repo / "data" / "d3.csv").write_text("x,y\n3,4\n")
        text = spec.read_text().replace("lr: 0.1}", "lr: 0.05}", 1)
        text = text.replace("traffic: {blue: 90, green: 10}", "traffic: {blue: 50, green: 50}", 1)
        spec.write_text(text)
        cli = [sys.executable, "-m", "mlspec.cli.main"]
        plan = timed([*cli, "plan", "--base", "main", "--format", "markdown", "."], repo)
        validate = timed([*cli, "validate", "."], repo)
        summary = subprocess.run([*cli, "plan", "--base", "main", "."], cwd=repo, capture_output=True,
                                 text=True).stdout.strip().splitlines()[-1]
    print(f"resources: {args.resources}; plan: {summary}")
    for name, times in (("plan --base main", plan), ("validate (one spec, for scale)", validate)):
        print(f"{name:<32} best {min(times):.3f} s  median {statistics.median(times):.3f} s")
    verdict = "meets" if min(plan) < TARGET_S else "MISSES"
    print(f"target < {TARGET_S:.1f} s: {verdict} (best {min(plan):.3f} s)")


if __name__ == "__main__":
    main()

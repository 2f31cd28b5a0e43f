"""Benchmark: `mlspec plan` and a no-op `mlspec up` on a generated 1,000-resource workspace (target < 1 s each), and
`mlspec plan --state` from a checkout without the workspace (CI), against the snapshot `up` published.

Run: .venv/bin/python bench/plan_up.py [--resources 1000]
Each figure is the wall time of the real CLI in a fresh process (start-up included), best and median of 5.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 1.0


def generate(folder: Path, count: int) -> None:
    """Computes, environments and data in a 1:3:6 mix: everything the local engine can apply in seconds."""
    computes, environments = count // 10, count * 3 // 10
    datasets = count - computes - environments
    (folder / "data").mkdir()
    docs = ["kind: Workspace\nname: bench\n"]
    docs += [f"kind: Compute\nname: c{i}\ntype: cluster\nmax_nodes: {1 + i % 4}\nresources: {{cpus: 1, memory: 1Gi}}\n"
             for i in range(computes)]
    docs += [f"kind: Environment\nname: e{i}\nenvironment_variables: {{SEED: '{i}'}}\n" for i in range(environments)]
    for i in range(datasets):
        (folder / "data" / f"d{i}.csv").write_text(f"x,y\n{i},{i * 2}\n")
        docs.append(f"kind: Data\nname: d{i}\npath: data/d{i}.csv\ndescription: dataset {i}\n")
    (folder / "mlspec.yaml").write_text("---\n".join(docs))


def timed(command: list[str], runs: int = 5, stderr: int | None = None) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=stderr)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resources", type=int, default=1000)
    args = parser.parse_args()
    mlspec = [sys.executable, "-m", "mlspec.cli.main"]
    with tempfile.TemporaryDirectory() as tmp:
        folder, share, checkout = Path(tmp) / "spec", Path(tmp) / "share", Path(tmp) / "checkout"
        folder.mkdir()
        generate(folder, args.resources)
        start = time.perf_counter()
        subprocess.run([*mlspec, "up", str(folder), "--yes", "--state", str(share)], check=True,
                       stdout=subprocess.DEVNULL)
        first_up = time.perf_counter() - start
        shutil.copytree(folder, checkout, ignore=shutil.ignore_patterns(".mlspec"))
        shared = ["--state", str(share)]  # its line on standard error ("planned against ...") is not timed output
        rows = [("validate", timed([*mlspec, "validate", str(folder)])),
                ("plan", timed([*mlspec, "plan", str(folder)])),
                ("plan --state", timed([*mlspec, "plan", str(checkout), *shared], stderr=subprocess.DEVNULL)),
                ("up (no-op)", timed([*mlspec, "up", str(folder), "--yes"])),
                ("up --state", timed([*mlspec, "up", str(folder), "--yes", *shared], stderr=subprocess.DEVNULL))]
        subprocess.run([*mlspec, "down", str(folder), "--yes"], check=True, stdout=subprocess.DEVNULL)
    print(f"{args.resources} resources; first `up` applied them all in {first_up:.2f}s\n")
    print(f"{'command':<12} {'best':>8} {'median':>8} {'target':>8}  per resource")
    for name, times in rows:
        best, median = min(times), statistics.median(times)
        verdict = "ok" if best < TARGET_S else "MISSED"
        per_resource = best / args.resources * 1000
        print(f"{name:<12} {best:>7.3f}s {median:>7.3f}s {TARGET_S:>7.1f}s  {per_resource:.2f} ms  {verdict}")


if __name__ == "__main__":
    main()

"""Rollout on the Docker target: requests failed while a model update replaces an endpoint's replica under load.

Run: DOCKER_HOST=unix:///run/mlspec-docker/docker.sock PYTHONPATH=. .venv/bin/python bench/rollout_docker.py \
[--repeats 1]

Each repeat runs tests/docker/test_rollout_docker_e2e.py: examples/iris provisioned on the real engine (its images
kept between runs), a new version of iris-clf registered, and 3 keep-alive clients pinned to blue calling the
endpoint while the update is performed as Pulumi performs it (the new generation's container created and waited on
until healthy, the old one stopped with its grace period and removed). Target: 0 failed, every repeat.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/docker/test_rollout_docker_e2e.py"
FIGURES = re.compile(r"rollout on Docker: (\d+) requests from (\d+) clients in ([\d.]+) s, (\d+) failed; "
                     r"new generation healthy after ([\d.]+) s, old one stopped in ([\d.]+) s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results = []
    for repeat in range(args.repeats):
        done = subprocess.run([sys.executable, "-m", "pytest", TEST, "-q", "-s", "-p", "no:cacheprovider"],
                              cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        found = FIGURES.search(done.stdout)
        if found is None:
            print(done.stdout[-3000:], done.stderr[-2000:], sep="\n")
            print(f"repeat {repeat + 1}: no figures (pytest exited {done.returncode})")
            return 1
        requests, clients, seconds, failed, created, stopped = found.groups()
        results.append(int(failed))
        print(f"repeat {repeat + 1}: {requests} requests from {clients} clients in {seconds} s, {failed} failed "
              f"(target 0); new generation healthy after {created} s, old one drained and stopped in {stopped} s; "
              f"test {'passed' if done.returncode == 0 else 'FAILED'}")
    print(f"failed requests per repeat: {results} (target: all 0)")
    return 0 if not any(results) else 1


if __name__ == "__main__":
    sys.exit(main())

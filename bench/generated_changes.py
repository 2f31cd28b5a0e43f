"""Benchmark: which generated Pulumi resources a change touches, on a generated 1,000-resource workspace.

Run: .venv/bin/python bench/generated_changes.py [--resources 1000]
Two copies of bench/spec_graph.py's workspace, the second with `src/train.py` edited (every job retrains) and one
endpoint's traffic shifted; both graphs built once, then `generated_changes(base, head, target)` timed in-process
(both sides' program models, for kubernetes their objects too, and the diff), best and median of 5, per target.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from spec_graph import best_and_median, generate  # bench/, the script's folder

from mlspec.backends.pulumi.changes import generated_changes
from mlspec.graph import load_graph

TARGET_S = 0.5  # both sides of the docker program; the whole `plan --base` has 1 s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resources", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        generate(base, args.resources)
        head = Path(tmp) / "head"
        shutil.copytree(base, head)
        (head / "src" / "train.py").write_text("print('train, tuned')\n")
        spec = head / "mlspec.yaml"
        spec.write_text(spec.read_text().replace("traffic: {blue: 90, green: 10}", "traffic: {blue: 80, green: 20}",
                                                 1))
        before, after = load_graph([base]), load_graph([head])
        print(f"{len(after.nodes)} graph nodes; src/train.py edited (every job retrains), one traffic shift\n")
        print(f"{'target':<12} {'best':>8} {'median':>8}  changes")
        for target in ("docker", "kubernetes"):
            changes = generated_changes(before, after, target)  # type: ignore[arg-type]
            best, median = best_and_median(lambda t=target: generated_changes(before, after, t))
            actions = Counter(change.action for change in changes)
            print(f"{target:<12} {best:>7.3f}s {median:>7.3f}s  {len(changes)}: "
                  + ", ".join(f"{n} {action}" for action, n in sorted(actions.items())))
            if target == "docker":
                verdict = "met" if best < TARGET_S else "MISSED"
                docker_best = best
        print(f"\ndocker, both sides: target < {TARGET_S}s: {verdict} ({docker_best / TARGET_S:.0%} of the budget)")


if __name__ == "__main__":
    main()

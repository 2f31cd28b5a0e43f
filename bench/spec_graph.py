"""Benchmark: validate and build the graph of a generated 1,000-resource workspace (target < 0.5 s).

Run: .venv/bin/python bench/spec_graph.py [--resources 1000]
Times analyze() in-process (load with source positions, validate, resolve, graph with content hashes),
best and median of 5, beside the time PyYAML alone takes to parse the same file.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from mlspec.graph import analyze, build_graph
from mlspec.load import load
from mlspec.resolve import resolve
from mlspec.validate import validate_documents

TARGET_S = 0.5


def generate(folder: Path, count: int) -> Path:
    """A realistic mix per group of 10: compute, environment, 2 data, 3 jobs, 2 models, 1 endpoint, 1 batch."""
    (folder / "src").mkdir()
    (folder / "src" / "train.py").write_text("print('train')\n")
    (folder / "data").mkdir()
    docs = ["kind: Workspace\nname: bench\ndefaults: {compute: c0, environment: e0}\n"]
    groups = count // 10
    for g in range(groups):
        (folder / "data" / f"d{g}.csv").write_text(f"x,y\n{g},{g}\n")
        docs += [
            f"kind: Compute\nname: c{g}\ntype: cluster\nmax_nodes: 4\nresources: {{cpus: 2, memory: 4Gi}}\n",
            f"kind: Environment\nname: e{g}\nrequirements: [scikit-learn>=1.4]\n",
            f"kind: Data\nname: d{g}\npath: data/d{g}.csv\n",
            f"kind: Data\nname: v{g}\npath: data/d{g}.csv\ndescription: validation rows\n",
        ]
        for j in range(3):
            register = f"\n  model: {{type: model, register_as: m{g}-{j}}}" if j < 2 else \
                "\n  report: {type: uri_folder}"
            out = "model" if j < 2 else "report"
            docs.append(
                f"kind: Job\nname: j{g}-{j}\ncode: src\ncompute: c{g}\nenvironment: e{g}\n"
                f"command: python train.py --data ${{{{inputs.data}}}} --lr ${{{{inputs.lr}}}} "
                f"--out ${{{{outputs.{out}}}}}\n"
                f"inputs: {{data: data:d{g}, lr: 0.{j + 1}}}\noutputs:{register}\ntimeout: 30m\n")
        docs.append(f"kind: Model\nname: m{g}-0\njob: j{g}-0\naliases: [champion]\n")
        docs.append(f"kind: Endpoint\nname: ep{g}\ndeployments:\n  blue: {{model: m{g}-0@latest, instance_count: 2}}\n"
                    f"  green: {{model: m{g}-1@latest}}\ntraffic: {{blue: 90, green: 10}}\n")
        docs.append(f"kind: Endpoint\nname: b{g}\ntype: batch\nmodel: m{g}-1\ninput: data:v{g}\n"
                    f"output: {{path: out/{g}}}\n")
    spec = folder / "mlspec.yaml"
    spec.write_text("---\n".join(docs))
    return spec


def best_and_median(action, runs: int = 5) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def stages(spec: Path) -> dict[str, float]:
    """Seconds spent in each stage of one analyze(), run stage by stage."""
    times: dict[str, float] = {}
    start = time.perf_counter()
    loaded = load([spec])
    times["load"] = time.perf_counter() - start
    diagnostics = loaded.diagnostics
    start = time.perf_counter()
    validated = validate_documents(loaded.documents, diagnostics)
    times["validate"] = time.perf_counter() - start
    start = time.perf_counter()
    resolved = resolve(validated, loaded.root, diagnostics)
    times["resolve"] = time.perf_counter() - start
    start = time.perf_counter()
    build_graph(resolved, diagnostics)
    times["graph"] = time.perf_counter() - start
    assert not diagnostics
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resources", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec = generate(Path(tmp), args.resources)
        text = spec.read_text()
        analysis = analyze([spec])
        assert analysis.graph is not None, [str(d.summary) for d in analysis.diagnostics.items[:5]]
        declared = text.count("\nkind: ")  # every document after the first (the workspace)
        nodes = len(analysis.graph.nodes)
        rows = [
            ("PyYAML C loader, values only", best_and_median(lambda: list(yaml.load_all(text, yaml.CSafeLoader)))),
            ("PyYAML pure-Python loader", best_and_median(lambda: list(yaml.load_all(text, yaml.SafeLoader)))),
            ("mlspec load (values + positions)", best_and_median(lambda: load([spec]))),
            ("mlspec validate + graph", best_and_median(lambda: analyze([spec]))),
        ]
        split = [stages(spec) for _ in range(5)]
    print(f"{declared} resources declared ({nodes} graph nodes with implicit models), {len(text) // 1024} KiB YAML\n")
    print(f"{'':<34} {'best':>8} {'median':>8}")
    for name, (best, median) in rows:
        print(f"{name:<34} {best:>7.3f}s {median:>7.3f}s")
    print("\nper stage (median): " + ", ".join(
        f"{stage} {statistics.median(run[stage] for run in split) * 1000:.0f} ms" for stage in split[0]))
    best = rows[-1][1][0]
    print(f"\ntarget < {TARGET_S}s: {'met' if best < TARGET_S else 'MISSED'} ({best / TARGET_S:.0%} of the budget)")


if __name__ == "__main__":
    main()

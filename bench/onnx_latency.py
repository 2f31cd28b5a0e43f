"""Model-call latency of the same models through ONNX Runtime, scikit-learn and torch: single rows and batches.

Run: .venv/bin/python bench/onnx_latency.py [--calls 3000] [--batch 1000]

Models: an iris pipeline (StandardScaler + LogisticRegression), a 50-tree random forest on iris, and the torch
example's kind of network (a 64-64-10 MLP on scikit-learn's 8x8 digits). Each is exported by `mlspec package`'s
own exporter (mlspec.runtime.edge.onnx_export) and run through the session the scoring server makes (one thread:
mlspec.runtime.serving.edge_formats.onnx_session), beside the original's own predict (scikit-learn's `predict`, a
TorchScript module under `torch.inference_mode`, one thread too). In-process, no HTTP: what the model call costs
a replica. Single row: `--calls` calls on rows taken in turn; batch: `--batch` rows per call, a tenth as many
calls. p50 and p99 in microseconds, and each original's p50 over ONNX Runtime's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def percentiles(call: Callable[[np.ndarray], Any], rows: np.ndarray, calls: int, size: int) -> tuple[float, float]:
    timings = []
    for index in range(calls + calls // 10):  # the first tenth warms up
        start = (index * size) % (len(rows) - size + 1)
        batch = rows[start:start + size]
        began = time.perf_counter()
        call(batch)
        timings.append(time.perf_counter() - began)
    kept = np.array(timings[calls // 10:]) * 1e6
    return float(np.percentile(kept, 50)), float(np.percentile(kept, 99))


def models() -> list[tuple[str, str, Any, np.ndarray]]:
    import torch
    from sklearn.datasets import load_digits, load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_iris(return_X_y=True)
    iris = np.tile(x, (8, 1))  # 1,200 rows: room for batches of 1,000
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    forest = RandomForestClassifier(n_estimators=50, random_state=0).fit(x, y)
    digits, labels = load_digits(return_X_y=True)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    inputs, targets = torch.tensor(digits / 16, dtype=torch.float32), torch.tensor(labels)
    for _ in range(50):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(inputs), targets).backward()
        optimiser.step()
    net.eval().requires_grad_(False)  # as a registered model is loaded: weights only, no autograd
    return [("iris logistic pipeline", "sklearn", pipeline, iris), ("iris forest, 50 trees", "sklearn", forest, iris),
            ("digits MLP 64-64-10", "torch", torch.jit.script(net), digits / 16)]


def onnx_call(name: str, flavor: str, model: Any, rows: np.ndarray, folder: Path) -> Callable[[np.ndarray], Any]:
    from mlspec.runtime.edge.onnx_export import export, save
    from mlspec.runtime.edge.original import Original
    from mlspec.runtime.edge.samples import Sample
    from mlspec.runtime.serving.edge_formats import onnx_session
    from mlspec.runtime.serving.registry import ModelSource

    original = Original(ModelSource(name, "1", str(folder), None), folder, "", {}, flavor, model, None,
                        rows.shape[1])
    exported = export(original, Sample(rows[:200], "bench", None))
    path = folder / f"{name.split()[1]}.onnx"
    save(exported, path)
    session = onnx_session(path)
    wanted = [exported.predict]
    return lambda batch: session.run(wanted, {exported.input: batch.astype(np.float32)})


def original_call(flavor: str, model: Any) -> Callable[[np.ndarray], Any]:
    if flavor == "sklearn":
        return model.predict  # type: ignore[no-any-return]
    import torch

    def call(batch: np.ndarray) -> Any:
        with torch.inference_mode():
            return model(torch.from_numpy(batch.astype(np.float32))).numpy()

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="single-row calls per model and runtime")
    parser.add_argument("--batch", type=int, default=1000, help="rows per batch call")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # as ONNX Runtime's session: one core per replica, in both
    print(f"{'model':<24} {'runtime':<13} {'1 row p50':>10} {'p99':>8} {f'{args.batch} rows p50':>15} {'p99':>8}"
          f"   (µs)")
    with tempfile.TemporaryDirectory() as folder:
        for name, flavor, model, rows in models():
            runtimes = {("scikit-learn" if flavor == "sklearn" else "torch"): original_call(flavor, model),
                        "ONNX Runtime": onnx_call(name, flavor, model, rows, Path(folder))}
            single: dict[str, float] = {}
            for runtime, call in runtimes.items():
                p50, p99 = percentiles(call, rows, args.calls, 1)
                b50, b99 = percentiles(call, rows, max(20, args.calls // 10), args.batch)
                single[runtime] = p50
                print(f"{name:<24} {runtime:<13} {p50:>10.1f} {p99:>8.1f} {b50:>15.1f} {b99:>8.1f}")
            original, onnx = next(iter(single.values())), single["ONNX Runtime"]
            print(f"{'':<24} single row: ONNX Runtime {original / onnx:.1f}x faster than the original")


if __name__ == "__main__":
    main()

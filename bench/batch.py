"""Batch scoring: mlspec's batch scorer against calling `model.predict` in a loop, and its memory as input grows.

Run: .venv/bin/python bench/batch.py [--rows 200000] [--mini-batch 1024] [--concurrency 2]

One iris logistic regression is registered (with its digest) in a fresh MLflow store; iris-like rows are written
as CSV, N and 10·N of them. Each measurement runs in its own process, started as the engine starts it:
  predict loop  the same CSV read into the same mini-batches of numpy arrays beforehand (not timed), then only
                `model.predict` on each, one after another: the ceiling a scorer can reach
  hand-written  pandas.read_csv(chunksize=...), predict, to_csv: what one writes by hand (for context only)
  mlspec        `python -m mlspec.runtime.batch` reading, scoring and writing predictions.csv; its rows/s is over
                the scoring (the result's scoring_s, model loading excluded)
Peak RSS is each child's own ru_maxrss (resource.getrusage(RUSAGE_CHILDREN) in a wrapper that starts it).
Targets (DESIGN.md §6): ≥ 0.8× the predict loop's rows/s; memory flat as the input grows 10×.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]

PREDICT_LOOP = textwrap.dedent('''
    import json, sys, time, warnings
    import numpy as np, pyarrow.csv as pacsv, mlflow.sklearn
    warnings.filterwarnings("ignore")
    folder, data, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    model = mlflow.sklearn.load_model(folder)
    table = pacsv.read_csv(data)
    x = np.column_stack([table.column(i).to_numpy() for i in range(table.num_columns)])
    batches = [x[i:i + size] for i in range(0, len(x), size)]
    model.predict(batches[0])
    started = time.perf_counter()
    rows = sum(len(model.predict(b)) for b in batches)
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}))
''')

HAND_WRITTEN = textwrap.dedent('''
    import json, sys, time, warnings
    import pandas as pd, mlflow.sklearn
    warnings.filterwarnings("ignore")
    folder, data, size, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    model = mlflow.sklearn.load_model(folder)
    started = time.perf_counter()
    rows = 0
    with open(out, "w") as handle:
        for chunk in pd.read_csv(data, chunksize=size):
            pd.DataFrame({"prediction": model.predict(chunk.to_numpy())}).to_csv(handle, header=rows == 0)
            rows += len(chunk)
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}))
''')


def register_model(root: Path) -> tuple[str, Path]:
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from mlspec.runtime.serving.integrity import model_digest

    features, target = load_iris(return_X_y=True, as_frame=True)
    features.columns = pd.Index(COLUMNS)
    model = LogisticRegression(max_iter=500).fit(features, target)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri  # this process only; the children get their URI explicitly
    experiment = mlflow.create_experiment("bench", artifact_location=str(root / "artifacts"))
    with mlflow.start_run(experiment_id=experiment) as run:
        info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(features, target.astype(float)),
                                        serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
    client = mlflow.MlflowClient(uri)
    folder = Path(client.get_logged_model(info.model_id).artifact_location.removeprefix("file://"))
    client.create_registered_model("iris-clf")
    client.create_model_version("iris-clf", info.model_uri, run_id=run.info.run_id,
                                tags={"mlspec.sha256": model_digest(folder)})
    return uri, folder


def write_rows(path: Path, rows: int) -> None:
    """Iris-like rows: each a real iris flower with a little noise, written in slices so memory stays small."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    from sklearn.datasets import load_iris

    base = load_iris().data
    rng = np.random.default_rng(0)
    with pacsv.CSVWriter(path, pa.schema([(c, pa.float64()) for c in COLUMNS])) as writer:
        for start in range(0, rows, 100_000):
            count = min(100_000, rows - start)
            x = np.round(base[rng.integers(0, len(base), count)] + rng.normal(0, 0.05, (count, 4)), 3)
            writer.write_table(pa.table({c: x[:, i] for i, c in enumerate(COLUMNS)}))


# Runs the measured command as its own child and reports that child's peak RSS alone: RUSAGE_CHILDREN in the
# benchmark itself would keep the largest of every child so far.
_MEASURE = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(done.returncode)")


def child(argv: list[str]) -> tuple[str, int]:
    """Run a child to completion: its stdout and its peak RSS in bytes."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", _MEASURE, *argv], capture_output=True, text=True, env=env,
                          timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout, int(done.stderr.strip().splitlines()[-1]) * 1024


def predict_loop(folder: Path, data: Path, size: int) -> tuple[float, int]:
    out, rss = child([sys.executable, "-c", PREDICT_LOOP, str(folder), str(data), str(size)])
    figures = json.loads(out.strip().splitlines()[-1])
    return figures["rows"] / figures["seconds"], rss


def hand_written(folder: Path, data: Path, size: int, work: Path) -> float:
    out, _ = child([sys.executable, "-c", HAND_WRITTEN, str(folder), str(data), str(size), str(work / "hand.csv")])
    figures = json.loads(out.strip().splitlines()[-1])
    return float(figures["rows"] / figures["seconds"])


def mlspec(uri: str, data: Path, work: Path, size: int, concurrency: int) -> tuple[float, int]:
    from mlspec.runtime.batch.contract import BatchRun

    run = BatchRun(endpoint="bench", model_uri="models:/iris-clf/1", tracking_uri=uri, input=str(data),
                   output=str(work / f"out-{data.stem}"), mini_batch_size=size, max_concurrency=concurrency)
    spec, result = work / f"{data.stem}.batchrun.json", work / f"{data.stem}.result.json"
    run.dump(spec)
    _, rss = child([sys.executable, "-m", "mlspec.runtime.batch", str(spec), "--result", str(result)])
    figures = json.loads(result.read_text())
    return figures["rows_scored"] / figures["scoring_s"], rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="N: the small input's rows (the large has 10·N)")
    parser.add_argument("--mini-batch", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, default=2, help="the endpoint's max_concurrency")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlspec-bench-batch-") as temp:
        work = Path(temp)
        began = time.perf_counter()
        uri, folder = register_model(work)
        small, large = work / "small.csv", work / "large.csv"
        write_rows(small, args.rows)
        write_rows(large, 10 * args.rows)
        print(f"iris logistic regression, mini-batches of {args.mini_batch} rows, max_concurrency "
              f"{args.concurrency}, {os.cpu_count()} CPUs; inputs of {args.rows:,} and {10 * args.rows:,} rows")
        loop_rate, loop_rss = predict_loop(folder, small, args.mini_batch)
        hand_rate = hand_written(folder, large, args.mini_batch, work)
        rates, peaks = [], []
        for data in (small, large):
            rate, rss = mlspec(uri, data, work, args.mini_batch, args.concurrency)
            rates.append(rate)
            peaks.append(rss)
        print(f"  predict loop          {loop_rate:>12,.0f} rows/s   (peak RSS {loop_rss / 2**20:,.0f} MiB, "
              "input in memory)")
        print(f"  hand-written loop     {hand_rate:>12,.0f} rows/s   (pandas read_csv chunks, predict, to_csv; "
              "for context)")
        for label, rate, rss in (("N", rates[0], peaks[0]), ("10·N", rates[1], peaks[1])):
            print(f"  mlspec, {label:<5} rows    {rate:>12,.0f} rows/s   (peak RSS {rss / 2**20:,.0f} MiB)")
        ratio = rates[1] / loop_rate
        growth = peaks[1] / peaks[0]
        print(f"throughput  {ratio:.2f}× the predict loop (10·N input)   target ≥ 0.8×   "
              f"{'ok' if ratio >= 0.8 else 'MISSED'}")
        print(f"memory      peak RSS ×{growth:.2f} for 10× the rows            target flat (≤ ×1.2)  "
              f"{'ok' if growth <= 1.2 else 'MISSED'}")
        print(f"(took {time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()

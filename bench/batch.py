"""Batch scoring: mlspec's batch scorer against two baselines, for two models, and its memory as the input grows.

Run: .venv/bin/python bench/batch.py [--rows 200000] [--mini-batch 1024] [--concurrency 1] [--compare-with TREE]

Two models are registered (with their digests) in a fresh MLflow store: an iris logistic regression (predict is
cheap, so scoring is bound by reading and writing) and a random forest like the iris example's `train-forest` job
(predict dominates). Iris-like rows are written as CSV, N and 10·N of them. Each measurement runs in its own
process, started as the engine starts it, on the 10·N input unless said otherwise:
  (a) predict loop  the file read into the same mini-batches of numpy arrays beforehand (not timed), then only
                    `model.predict` on each, one after another: the target's reference
  (b) hand loop     what one writes by hand with pyarrow: read the file in blocks, cut them into the mini-batches,
                    predict each, write `row,prediction` CSV with pyarrow's CSVWriter; one thread
  mlspec            `python -m mlspec.runtime.batch` reading, scoring and writing predictions.csv; its rows/s is over
                    the scoring (the result's scoring_s, model loading excluded, the model's first calls
                    included: (a) warms up before its clock starts), for N and for 10·N rows, and for the 10·N
                    rows as Parquet (cheap to read: for the logistic regression, parsing CSV alone costs most of
                    what (a) spends predicting)
  --compare-with    the same mlspec run from another source tree (an earlier checkout), for before/after figures
Peak RSS is each child's own ru_maxrss (resource.getrusage(RUSAGE_CHILDREN) in a wrapper that starts it).
Targets (DESIGN.md §6): ≥ 0.8× (a)'s rows/s; memory flat (≤ ×1.2) as the input grows 10×. Figures depend on the
machine being otherwise idle: the stages overlap on separate cores, so a busy machine understates mlspec.
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

PREDICT_LOOP = textwrap.dedent("""
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
""")

HAND_LOOP = textwrap.dedent("""
    import json, sys, time, warnings
    import numpy as np, pyarrow as pa, pyarrow.csv as pacsv, mlflow.sklearn
    warnings.filterwarnings("ignore")
    folder, data, size, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    model = mlflow.sklearn.load_model(folder)
    started = time.perf_counter()
    rows, rest = 0, None
    schema = pa.schema([("row", pa.int64()), ("prediction", pa.int64())])
    with pacsv.CSVWriter(out, schema) as writer:
        for batch in pacsv.open_csv(data, read_options=pacsv.ReadOptions(block_size=1 << 20)):
            x = np.column_stack([c.to_numpy() for c in batch.columns])
            if rest is not None:
                x = np.concatenate([rest, x])
            whole = len(x) - len(x) % size
            for i in range(0, whole, size):
                y = model.predict(x[i:i + size])
                writer.write_table(pa.table({"row": np.arange(rows, rows + len(y)), "prediction": y}, schema=schema))
                rows += len(y)
            rest = x[whole:]
        if rest is not None and len(rest):
            y = model.predict(rest)
            writer.write_table(pa.table({"row": np.arange(rows, rows + len(y)), "prediction": y}, schema=schema))
            rows += len(y)
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}))
""")


def register_models(root: Path) -> tuple[str, dict[str, Path]]:
    """The logistic regression as iris-clf, the forest as iris-forest, version 1 each: (tracking URI, folders)."""
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from mlspec.runtime.serving.integrity import model_digest

    features, target = load_iris(return_X_y=True, as_frame=True)
    features.columns = pd.Index(COLUMNS)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri  # this process only; the children get their URI explicitly
    experiment = mlflow.create_experiment("bench", artifact_location=str(root / "artifacts"))
    client = mlflow.MlflowClient(uri)
    folders = {}
    for name, model in (("iris-clf", LogisticRegression(max_iter=500)),
                        ("iris-forest", RandomForestClassifier(n_estimators=50, random_state=0))):
        model.fit(features, target)
        with mlflow.start_run(experiment_id=experiment) as run:
            info = mlflow.sklearn.log_model(model, name="model",
                                            signature=infer_signature(features, target.astype(float)),
                                            serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
        folder = Path(client.get_logged_model(info.model_id).artifact_location.removeprefix("file://"))
        client.create_registered_model(name)
        client.create_model_version(name, info.model_uri, run_id=run.info.run_id,
                                    tags={"mlspec.sha256": model_digest(folder)})
        folders[name] = folder
    return uri, folders


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


def child(argv: list[str], tree: Path = REPO) -> tuple[str, int]:
    """Run a child to completion, importing mlspec from `tree`: its stdout and its peak RSS in bytes."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", _MEASURE, *argv], capture_output=True, text=True, env=env,
                          timeout=900, cwd=tree)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout, int(done.stderr.strip().splitlines()[-1]) * 1024


def timed_script(script: str, *args: str) -> tuple[float, int]:
    """(rows/s, peak RSS) of a baseline script that prints {"rows", "seconds"}."""
    out, rss = child([sys.executable, "-c", script, *args])
    figures = json.loads(out.strip().splitlines()[-1])
    return figures["rows"] / figures["seconds"], rss


def mlspec(uri: str, model: str, data: Path, work: Path, size: int, concurrency: int,
           tree: Path = REPO) -> tuple[float, int]:
    from mlspec.runtime.batch.contract import BatchRun

    label = f"{model}-{data.stem}-{abs(hash(tree))}"
    run = BatchRun(endpoint="bench", model_uri=f"models:/{model}/1", tracking_uri=uri, input=str(data),
                   output=str(work / f"out-{label}"), mini_batch_size=size, max_concurrency=concurrency)
    spec, result = work / f"{label}.batchrun.json", work / f"{label}.result.json"
    run.dump(spec)
    _, rss = child([sys.executable, "-m", "mlspec.runtime.batch", str(spec), "--result", str(result)], tree)
    figures = json.loads(result.read_text())
    if figures["status"] != "succeeded":
        raise SystemExit(f"mlspec failed on {model}: {figures.get('error')}")
    return figures["rows_scored"] / figures["scoring_s"], rss


def report(title: str, rates: dict[str, tuple[float, int]]) -> list[str]:
    """The table for one model, and the verdicts against the targets."""
    loop, hand = rates["(a) predict loop"][0], rates["(b) hand loop"][0]
    lines = [title, f"  {'':<26}{'rows/s':>12}  {'×(a)':>6}  {'×(b)':>6}  {'peak RSS':>9}"]
    for label, (rate, rss) in rates.items():
        lines.append(f"  {label:<26}{rate:>12,.0f}  {rate / loop:>6.2f}  {rate / hand:>6.2f}  "
                     f"{rss / 2**20:>5,.0f} MiB")
    ratio = rates["mlspec, 10·N rows"][0] / loop
    growth = rates["mlspec, 10·N rows"][1] / rates["mlspec, N rows"][1]
    lines.append(f"  throughput {ratio:.2f}× (a) on 10·N rows    target ≥ 0.8×  {'ok' if ratio >= 0.8 else 'MISSED'}")
    columnar = rates["mlspec, 10·N, Parquet"][0] / loop
    lines.append(f"  from Parquet {columnar:.2f}× (a)               target ≥ 0.8×  "
                 f"{'ok' if columnar >= 0.8 else 'MISSED'}")
    lines.append(f"  memory     peak RSS ×{growth:.2f} for 10× the rows  target ≤ ×1.2  "
                 f"{'ok' if growth <= 1.2 else 'MISSED'}")
    return lines


def main() -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="N: the small input's rows (the large has 10·N)")
    parser.add_argument("--mini-batch", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, default=1,
                        help="the endpoint's max_concurrency (default 1, the endpoint's own default)")
    parser.add_argument("--compare-with", type=Path, metavar="TREE",
                        help="also run mlspec from this source tree (e.g. an earlier checkout) on 10·N rows")
    parser.add_argument("--models", default="iris-clf,iris-forest", help="which of the two models to measure")
    args = parser.parse_args()
    size = args.mini_batch
    with tempfile.TemporaryDirectory(prefix="mlspec-bench-batch-") as temp:
        work = Path(temp)
        began = time.perf_counter()
        uri, folders = register_models(work)
        small, large = work / "small.csv", work / "large.csv"
        write_rows(small, args.rows)
        write_rows(large, 10 * args.rows)
        columnar = work / "large.parquet"
        pq.write_table(pacsv.read_csv(large), columnar)
        print(f"mini-batches of {size} rows, max_concurrency {args.concurrency}, {os.cpu_count()} CPUs, load "
              f"average {os.getloadavg()[0]:.1f}; inputs of {args.rows:,} (N) and {10 * args.rows:,} (10·N) rows")
        titles = {"iris-clf": "iris logistic regression (predict is cheap: reading and writing dominate)",
                  "iris-forest": "iris random forest, 50 trees (predict dominates)"}
        for model in args.models.split(","):
            folder = str(folders[model])
            rates = {
                "(a) predict loop": timed_script(PREDICT_LOOP, folder, str(large), str(size)),
                "(b) hand loop": timed_script(HAND_LOOP, folder, str(large), str(size), str(work / "hand.csv")),
                "mlspec, N rows": mlspec(uri, model, small, work, size, args.concurrency),
                "mlspec, 10·N rows": mlspec(uri, model, large, work, size, args.concurrency),
                "mlspec, 10·N, Parquet": mlspec(uri, model, columnar, work, size, args.concurrency),
            }
            if args.compare_with:
                rates[f"{args.compare_with.name}, 10·N rows"] = mlspec(uri, model, large, work, size,
                                                                      args.concurrency, args.compare_with.resolve())
            print("\n".join(report(titles[model], rates)), flush=True)
        print(f"(peak RSS of (a) includes its input, held in memory; took {time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()

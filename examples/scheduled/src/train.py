"""Train a classifier on every CSV in a folder (one per day): the label is the 'species' column."""

import argparse
import os
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="folder of CSVs with four feature columns and 'species'")
    parser.add_argument("--model-dir", required=True)
    args = parser.parse_args()

    days = sorted(Path(args.data).glob("*.csv"))
    tables = [np.genfromtxt(day, delimiter=",", names=True) for day in days]
    table = np.concatenate(tables)
    features = [n for n in table.dtype.names if n != "species"]
    x = np.column_stack([table[n] for n in features])
    y = table["species"].astype(int)
    model = LogisticRegression(max_iter=500).fit(x, y)
    accuracy = float(model.score(x, y))
    print(f"{len(days)} day(s), {len(y)} rows: training accuracy {accuracy:.3f}")

    if os.environ.get("MLFLOW_RUN_ID"):  # set by mlspec; the script also runs by hand without MLflow
        import mlflow

        mlflow.log_params({"days": len(days), "rows": len(y)})
        mlflow.log_metric("training_accuracy", accuracy)

    out = Path(args.model_dir)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "model.joblib")


if __name__ == "__main__":
    main()

"""Train an iris classifier: reads the CSV mlspec passes, logs to MLflow, saves the model with joblib."""

import argparse
import os
from pathlib import Path

import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="CSV with four feature columns and 'species'")
    parser.add_argument("--algo", choices=["logistic", "forest"], default="logistic")
    parser.add_argument("--C", type=float, default=1.0, help="inverse regularisation (logistic)")
    parser.add_argument("--model-dir", required=True)
    args = parser.parse_args()

    table = np.genfromtxt(args.data, delimiter=",", names=True)
    features = [n for n in table.dtype.names if n != "species"]
    x = np.column_stack([table[n] for n in features])
    y = table["species"].astype(int)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)

    if args.algo == "forest":
        model = RandomForestClassifier(n_estimators=50, random_state=0)
    else:
        model = LogisticRegression(C=args.C, max_iter=500)
    model.fit(x_train, y_train)
    accuracy = float(model.score(x_test, y_test))
    print(f"{args.algo}: test accuracy {accuracy:.3f}")

    if os.environ.get("MLFLOW_RUN_ID"):  # set by mlspec; the script also runs by hand without MLflow
        import mlflow

        mlflow.log_params({"algo": args.algo, "C": args.C})
        mlflow.log_metric("accuracy", accuracy)

    out = Path(args.model_dir)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "model.joblib")


if __name__ == "__main__":
    main()

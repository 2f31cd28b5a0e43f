"""Score the trained model on test.csv: log accuracy to MLflow and write a short report file."""

import argparse
import json
from pathlib import Path

import joblib
import mlflow
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--data", required=True)
parser.add_argument("--report", required=True)
args = parser.parse_args()

model = joblib.load(next(Path(args.model).rglob("*.joblib")))
test = pd.read_csv(Path(args.data) / "test.csv")
predicted = model.predict(test.drop(columns="target"))
metrics = {"test_accuracy": float(accuracy_score(test["target"], predicted)),
           "test_f1": float(f1_score(test["target"], predicted, average="macro"))}
mlflow.log_metrics(metrics)
Path(args.report).write_text(json.dumps(metrics, indent=2) + "\n")
print(json.dumps(metrics))

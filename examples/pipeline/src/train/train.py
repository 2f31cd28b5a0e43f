"""Train a scaled logistic regression on train.csv and save it with joblib into the model folder."""

import argparse
from pathlib import Path

import joblib
import mlflow
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--C", type=float, default=1.0)
parser.add_argument("--model-dir", required=True)
args = parser.parse_args()

train = pd.read_csv(Path(args.data) / "train.csv")
features, target = train.drop(columns="target"), train["target"]
model = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=500))
model.fit(features, target)
mlflow.log_metric("train_accuracy", float(model.score(features, target)))
joblib.dump(model, Path(args.model_dir) / "model.joblib")

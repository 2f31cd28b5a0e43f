"""Train a linear digits classifier with SGD: logs validation accuracy each epoch, saves the model with joblib.

The default regularisation (--alpha 1.0) is far too strong: the sweep in ../mlspec.yaml finds a better one.
"""

import argparse
import os
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alpha", type=float, default=1.0, help="L2 regularisation strength")
    parser.add_argument("--loss", choices=["hinge", "log_loss", "modified_huber"], default="hinge")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--model-dir", required=True)
    args = parser.parse_args()

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)

    tracked = bool(os.environ.get("MLFLOW_RUN_ID"))  # set by mlspec; the script also runs by hand without MLflow
    if tracked:
        import mlflow
    model = SGDClassifier(alpha=args.alpha, loss=args.loss, random_state=0)
    classes = np.unique(y)
    accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        model.partial_fit(x_train, y_train, classes=classes)
        accuracy = float(model.score(x_val, y_val))
        if tracked:
            mlflow.log_metric("val_accuracy", accuracy, step=epoch)  # read by early termination as it runs
    print(f"alpha={args.alpha:g} loss={args.loss}: validation accuracy {accuracy:.3f}")

    out = Path(args.model_dir)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "model.joblib")


if __name__ == "__main__":
    main()

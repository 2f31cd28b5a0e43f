"""Scoring script for the iris classifier: Azure ML's contract, init() once per server process, run() per request.

mlspec checks every request against schema.json before run() sees it, so run() validates nothing itself.
"""

import json
import os

import mlflow.sklearn
import numpy as np

model = None


def init():
    """Load the registered model from the folder mlspec verified and copied for this replica."""
    global model
    model = mlflow.sklearn.load_model(os.environ["AZUREML_MODEL_DIR"])


def run(raw_data):
    """`raw_data`: the request body as text, {"data": [[sepal_length, sepal_width, petal_length, petal_width], ...]}."""
    rows = np.asarray(json.loads(raw_data)["data"], dtype=float)
    return {"predictions": model.predict(rows).tolist(),
            "probabilities": model.predict_proba(rows).round(4).tolist()}

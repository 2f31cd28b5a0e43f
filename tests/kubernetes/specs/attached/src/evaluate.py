"""Loads the registered model and prints its prediction for one input."""

import argparse

import mlflow.pyfunc
import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
model = mlflow.pyfunc.load_model(parser.parse_args().model)
print(model.predict(np.zeros((1, 8), dtype=np.float32)))

"""Shared by the batch scorer tests: iris inputs in every format, BatchRun builders, a model that fails on purpose.

(Named test_* so it lives beside the tests it serves; it holds no tests itself.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
from test_serving_support import IrisStore, fluent_tracking_uri, register

from mlspec.runtime.batch.contract import BatchRun

REPO = Path(__file__).resolve().parents[2]

# Scores each row as 2·x; fails every mini-batch holding a negative x; sleeps `x` seconds on x == 999 (a stuck
# call, for timeouts); with $BATCH_FLAKY_DIR set, fails the first attempt at each mini-batch (for retries).
FLAKY_MODEL = textwrap.dedent('''
    import os
    import time
    from pathlib import Path

    import mlflow.pyfunc
    from mlflow.models import set_model


    class Flaky(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            x = model_input["x"]
            if (x < 0).any():
                raise ValueError(f"negative x at id {int(model_input['id'][x < 0].iloc[0])}")
            if (x == 999).any():
                time.sleep(float(os.environ.get("BATCH_STUCK_S", "5")))
            flaky = os.environ.get("BATCH_FLAKY_DIR")
            if flaky:
                marker = Path(flaky) / f"seen-{int(model_input['id'].iloc[0])}"
                if not marker.exists():
                    marker.touch()
                    raise RuntimeError("first attempt fails")
            delay = float(os.environ.get("BATCH_DELAY_S", "0"))
            if delay:
                time.sleep(delay)
            return (x * 2).to_numpy()


    set_model(Flaky())
''')


def iris_frame(store: IrisStore, rows: int) -> pd.DataFrame:
    """`rows` iris rows (repeating the 150), with a text column the model does not take."""
    features = store.features
    frame = features.iloc[[i % len(features) for i in range(rows)]].reset_index(drop=True)
    frame["note"] = [f"row {i}" for i in range(rows)]
    return frame


def write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False, row_group_size=97)  # row groups that are no multiple of a mini-batch
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


def make_run(tracking_uri: str, model_uri: str, input_path: Path, output: Path, **fields: Any) -> BatchRun:
    values: dict[str, Any] = {"endpoint": "score", "model_uri": model_uri, "tracking_uri": tracking_uri,
                              "input": str(input_path), "output": str(output), "mini_batch_size": 64,
                              "max_retries": 0, "timeout": 30}
    values.update(fields)
    return BatchRun.model_validate(values)


def register_flaky(store: IrisStore, folder: Path) -> str:
    """Register the flaky pyfunc (with its digest tag) and return its models:/ URI."""
    import mlflow
    import mlflow.pyfunc

    from mlspec.runtime.serving.integrity import model_digest

    code = folder / "flaky_model.py"
    code.write_text(FLAKY_MODEL)
    with fluent_tracking_uri(store.tracking_uri), mlflow.start_run(
            experiment_id=mlflow.get_experiment_by_name("serving-tests").experiment_id) as run:
        info = mlflow.pyfunc.log_model(name="flaky", python_model=str(code), pip_requirements=["mlflow"])
    location = mlflow.MlflowClient(store.tracking_uri).get_logged_model(info.model_id).artifact_location
    digest = model_digest(Path(location.removeprefix("file://")))
    version = register(store.tracking_uri, info.model_uri, run.info.run_id, {"mlspec.sha256": digest}, name="flaky")
    return f"models:/flaky/{version}"


def numbers_frame(values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"id": range(len(values)), "x": values})


def start_cli(run: BatchRun, folder: Path, env: dict[str, str] | None = None,
              name: str = "run") -> tuple[subprocess.Popen[bytes], Path, Path]:
    """`python -m mlspec.runtime.batch` in a fresh process, as the engine starts it: (process, result, log)."""
    spec, result, log = folder / f"{name}.json", folder / f"{name}.result.json", folder / f"{name}.log"
    run.dump(spec)
    environ = {**os.environ, **(env or {}),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with log.open("wb") as handle:
        process = subprocess.Popen([sys.executable, "-m", "mlspec.runtime.batch", str(spec), "--result", str(result)],
                                   stdout=handle, stderr=subprocess.STDOUT, env=environ, cwd=folder)
    return process, result, log

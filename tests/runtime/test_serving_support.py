"""Shared by the serving and gateway tests: a registered iris model in a real MLflow store, and real server processes.

(Named test_* so it lives beside the tests it serves; it holds no tests itself.)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[2]
MODEL = "iris-clf"
START_TIMEOUT_S = 90.0  # importing MLflow and scikit-learn on a loaded 2-core machine takes a while


@dataclass
class IrisStore:
    root: Path
    tracking_uri: str
    folder: Path  # the logged model's artifact folder in the store
    features: Any  # a pandas DataFrame of iris rows
    model: Any  # the fitted LogisticRegression

    def expected(self, rows: Any) -> list[Any]:
        return self.model.predict(rows).tolist()  # type: ignore[no-any-return]


@contextlib.contextmanager
def fluent_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at `uri` for a while through its environment variable, and restore it after.

    `mlflow.set_tracking_uri` would outlive this store and override MLFLOW_TRACKING_URI for every later test of
    the session (a model loaded by URI would then come from the wrong store).
    """
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous


def make_iris_store(root: Path) -> IrisStore:
    """Train, log (cloudpickle, as mlspec's packaging saves models) and register version 1 with its digest tag."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from mlspec.runtime.serving.integrity import model_digest

    features, target = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(features, target)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with fluent_tracking_uri(uri):
        experiment = mlflow.create_experiment("serving-tests", artifact_location=str(root / "artifacts"))
        with mlflow.start_run(experiment_id=experiment) as run:
            info = mlflow.sklearn.log_model(
                model, name="model", signature=infer_signature(features, model.predict(features)),
                serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
    client = mlflow.MlflowClient(uri)
    folder = Path(client.get_logged_model(info.model_id).artifact_location.removeprefix("file://"))
    register(uri, info.model_uri, run.info.run_id, {"mlspec.sha256": model_digest(folder)})
    client.set_registered_model_alias(MODEL, "champion", "1")
    return IrisStore(root, uri, folder, features, model)


_SHARED: list[IrisStore] = []


def shared_store(factory: Any) -> IrisStore:
    """One store for every test module of the session that asks (creating one takes seconds); tests add versions
    and models to it but never change version 1."""
    if not _SHARED:
        _SHARED.append(make_iris_store(factory.mktemp("iris-store")))
    return _SHARED[0]


def register(tracking_uri: str, source: Path | str, run_id: str | None, tags: dict[str, str],
             name: str = MODEL) -> str:
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri)
    with contextlib.suppress(MlflowException):  # already there
        client.create_registered_model(name)
    with fluent_tracking_uri(tracking_uri):  # MLflow resolves a models:/m-... source through the fluent URI
        return str(client.create_model_version(name, str(source), run_id=run_id, tags=tags).version)


def copy_model(store: IrisStore, name: str) -> Path:
    """A copy of the logged model's files elsewhere in the store, to register (and tamper with) separately."""
    destination = store.root / "copies" / name
    shutil.copytree(store.folder, destination)
    return destination


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server process started as the engine starts it (`python -m ...`), with its output in a log file."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path
    seen: list[int] = field(default_factory=list)  # /health statuses while waiting for it

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.url} exited with {self.process.returncode}:\n{self.output()}")
            try:
                status = httpx.get(f"{self.url}/health", timeout=2).status_code
            except httpx.TransportError:
                status = 0
            self.seen.append(status)
            if status == 200:
                return
            time.sleep(0.1)
        raise AssertionError(f"{self.url} not ready after {timeout}s:\n{self.output()}")

    def wait_exit(self, timeout: float = START_TIMEOUT_S) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start(module: str, args: list[str], log: Path) -> Server:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with log.open("wb") as handle:
        process = subprocess.Popen([sys.executable, "-m", module, *args, "--host", "127.0.0.1", "--port", str(port)],
                                   stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
    return Server(process, f"http://127.0.0.1:{port}", log)


def start_gateway(replica: Server, key: str, config: Path) -> Server:
    """mlspec's gateway with key auth in front of one replica (deployment 'blue'), its config written to `config`."""
    from mlspec.runtime.keys import key_hash

    config.write_text(json.dumps({"endpoint": "iris", "auth": "key", "key_hashes": [key_hash(key)],
                                  "deployments": {"blue": {"weight": 100, "replicas": [replica.url]}}}))
    return start("mlspec.runtime.gateway", ["--config", str(config)], config.with_suffix(".log"))


def start_scoring(store: IrisStore, model_uri: str, log: Path, *extra: str) -> Server:
    return start("mlspec.runtime.serving", ["--model-uri", model_uri, "--tracking-uri", store.tracking_uri, *extra],
                 log)


def rows(store: IrisStore, count: int = 5) -> Any:
    """A few iris rows of all three classes."""
    return store.features.iloc[np.linspace(0, len(store.features) - 1, count).astype(int)]


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))

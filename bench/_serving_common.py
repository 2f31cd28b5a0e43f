"""What the serving benchmarks share: models registered as mlspec registers them, and the servers they measure.

Also the floor server itself: `python bench/_serving_common.py floor PORT MODEL_FOLDER`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
IRIS_BODY = json.dumps({"dataframe_split": {"columns": IRIS_COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}}).encode()
KEY = "bench-key"
PYTHON = sys.executable


@dataclass(frozen=True)
class Registered:
    tracking_uri: str
    model_uri: str  # models:/NAME/1
    folder: Path  # the version's files in the store (what `mlflow models serve` is given)


def _register(root: Path, name: str, path: Path, flavor: str) -> Registered:
    from mlspec.runtime.packaging import register_path

    uri = f"sqlite:///{root / 'mlflow.db'}"
    registered = register_path(uri, name, path, flavor=flavor, artifact_location=str(root / "artifacts"))  # type: ignore[arg-type]
    folder = Path(registered.source_uri.removeprefix("file://"))
    return Registered(uri, f"models:/{name}/{registered.version}", folder)


def register_iris(root: Path) -> Registered:
    """A logistic regression on iris (fitted on a DataFrame, so it knows its column names), saved with joblib as a
    training job would and registered by mlspec's packaging (re-saved as an MLflow model, sha256-tagged)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, target = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(features, target)
    joblib.dump(model, root / "iris.joblib")
    return _register(root, "iris-clf", root / "iris.joblib", "sklearn")


def register_digits_mlp(root: Path) -> Registered:
    """The torch example's kind of model: a 64-64-10 MLP on 8x8 digits (pixels 0..16), scripted to TorchScript.
    A few epochs only: the benchmark measures serving, not accuracy."""
    import numpy as np
    import torch
    from torch import nn

    torch.manual_seed(0)
    table = np.loadtxt(REPO / "examples" / "torch-digits" / "data" / "digits.csv", delimiter=",", skiprows=1,
                       dtype=np.float32)
    x, y = torch.from_numpy(table[:, :-1] / 16.0), torch.from_numpy(table[:, -1].astype(np.int64))
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(3):
        for start in range(0, len(x), 64):
            optimiser.zero_grad()
            nn.functional.cross_entropy(net(x[start:start + 64]), y[start:start + 64]).backward()
            optimiser.step()

    class Scaled(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.inner(pixels / 16.0).argmax(1)

    torch.jit.script(Scaled(net).eval()).save(str(root / "digits.pt"))
    return _register(root, "digits-mlp", root / "digits.pt", "torch")


def digits_body() -> bytes:
    first = (REPO / "examples" / "torch-digits" / "data" / "digits.csv").read_text().splitlines()[1]
    return json.dumps({"inputs": [[float(v) for v in first.split(",")[:64]]]}).encode()


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[bytes, bytes]:
    """One request on a keep-alive connection: its response's head and body (read by content-length)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    at = head.lower().find(b"content-length:")
    return head, await reader.readexactly(int(head[at + 15:head.find(b"\r\n", at)]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_gateway_config(path: Path, replica_port: int) -> None:
    path.write_text(json.dumps({
        "endpoint": "bench", "auth": "key", "key_hashes": [hashlib.sha256(KEY.encode()).hexdigest()],
        # As the local engine writes it for a deployment with default request settings and probes.
        "deployments": {"blue": {"weight": 100, "replicas": [f"http://127.0.0.1:{replica_port}"],
                                 "max_concurrent": 64, "max_queue_wait": 0.5,
                                 "readiness": {"initial_delay": 10, "period": 10, "timeout": 2,
                                               "failure_threshold": 30, "success_threshold": 1}}}}))


def caddy_binary() -> str | None:
    """Caddy from this interpreter's environment (`pip install -e '.[bench]'`) or from PATH."""
    return shutil.which("caddy", path=os.pathsep.join([str(Path(PYTHON).parent), os.environ.get("PATH", "")]))


def write_caddy_config(path: Path, port: int, replica_port: int) -> None:
    """Caddy doing the gateway's core job: a key check on the Authorization header, then a keep-alive proxy."""
    path.write_text(json.dumps({"admin": {"disabled": True}, "apps": {"http": {"servers": {"bench": {
        "listen": [f"127.0.0.1:{port}"], "automatic_https": {"disable": True},
        "routes": [{"match": [{"header": {"Authorization": [f"Bearer {KEY}"]}}],
                    "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": f"127.0.0.1:{replica_port}"}]}],
                    "terminal": True},
                   {"match": [{"path": ["/health"]}], "handle": [{"handler": "static_response", "status_code": 200}],
                    "terminal": True},
                   {"handle": [{"handler": "static_response", "status_code": 401}]}]}}}}}))


def commands(registered: Registered, ports: dict[str, int], gateway_config: Path) -> dict[str, list[str]]:
    """How each target is started: mlspec's server, its gateway, the floor, and MLflow's own server."""
    return {
        "floor": [PYTHON, str(Path(__file__).resolve()), "floor", str(ports.get("floor", 0)), str(registered.folder)],
        "mlspec": [PYTHON, "-m", "mlspec.runtime.serving", "--model-uri", registered.model_uri, "--tracking-uri",
                   registered.tracking_uri, "--port", str(ports.get("mlspec", 0))],
        "gateway": [PYTHON, "-m", "mlspec.runtime.gateway", "--config", str(gateway_config), "--port",
                    str(ports.get("gateway", 0))],
        "caddy": [caddy_binary() or "caddy", "run", "--config", str(gateway_config.with_name("caddy.json"))],
        "forwarder": [PYTHON, str(Path(__file__).resolve()), "forwarder", str(ports.get("forwarder", 0)),
                      str(ports.get("mlspec", 0))],
        # The version's folder rather than its models:/ URI: for a models:/ URI of a local store MLflow writes a
        # registered_model_meta file into that folder, which mlspec's server (rightly) refuses as changed files.
        "mlflow": [PYTHON, "-m", "mlflow", "models", "serve", "-m", str(registered.folder), "-h", "127.0.0.1",
                   "-p", str(ports.get("mlflow", 0)), "--env-manager", "local"],
    }


def launch(argv: list[str], log: Path, tracking_uri: str, cpus: str | None = None) -> subprocess.Popen[bytes]:
    """Start a server with its output in `log`; pinned to `cpus` (taskset's list, inherited by its children)."""
    # `mlflow models serve` runs `uvicorn` from PATH: this interpreter's.
    path = os.pathsep.join([str(Path(PYTHON).parent), os.environ.get("PATH", "")])
    environment = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": tracking_uri, "PATH": path}
    with log.open("wb") as handle:
        return subprocess.Popen([*(["taskset", "-c", cpus] if cpus else []), *argv], stdout=handle,
                                stderr=subprocess.STDOUT, env=environment)


def health_path(name: str) -> str:
    return "/ping" if name == "mlflow" else "/health"


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, path: str = "/health") -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{url} exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + path, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    sys.exit(f"{url} did not become ready:\n{log.read_text()}")


def stop(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        process.terminate()
    for process in processes.values():
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def floor_server(port: int, folder: str) -> None:
    """The floor: the least a server can do for this request (parse the JSON, predict on a numpy array, answer)."""
    import warnings

    import mlflow.sklearn
    import numpy as np
    import orjson
    import uvicorn

    warnings.filterwarnings("ignore")
    model = mlflow.sklearn.load_model(folder)

    async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()  # type: ignore[operator]
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/health":
            out = b"{}"
        else:
            rows = np.array(orjson.loads(body)["dataframe_split"]["data"], dtype=np.float64)
            out = orjson.dumps({"predictions": model.predict(rows)}, option=orjson.OPT_SERIALIZE_NUMPY)
        await send({"type": "http.response.start", "status": 200,  # type: ignore[operator]
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})  # type: ignore[operator]

    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning",
                access_log=False, lifespan="off")


def forwarder_server(port: int, upstream: int) -> None:
    """The floor of any proxy hop: bytes copied between client and replica by uvloop, with no HTTP parsing at all.
    What it adds over calling the replica directly is the cost of the extra hop itself on this machine."""
    import asyncio

    import uvloop

    class Upstream(asyncio.Protocol):
        def __init__(self, client: asyncio.Transport) -> None:
            self.client = client

        def data_received(self, data: bytes) -> None:
            self.client.write(data)

        def connection_lost(self, exc: Exception | None) -> None:
            self.client.close()

    class Client(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.early: list[bytes] = []
            self.upstream: asyncio.Transport | None = None
            asyncio.get_running_loop().create_task(self.connect())

        async def connect(self) -> None:
            upstream, _ = await asyncio.get_running_loop().create_connection(
                lambda: Upstream(self.transport), "127.0.0.1", upstream_port)
            self.upstream = upstream
            for data in self.early:
                upstream.write(data)

        def data_received(self, data: bytes) -> None:
            if self.upstream is None:
                self.early.append(data)
            else:
                self.upstream.write(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.upstream is not None:
                self.upstream.close()

    upstream_port = upstream

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(Client, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(serve())


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "floor":
        floor_server(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "forwarder":
        forwarder_server(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit("usage: _serving_common.py floor PORT MODEL_FOLDER | forwarder PORT UPSTREAM_PORT")

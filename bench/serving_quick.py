"""Quick benchmark: single-row requests to one sklearn model, directly, through the gateway, and against a floor.

Run: .venv/bin/python bench/serving_quick.py [--requests 5000] [--concurrency 1 16] [--mlflow]

Targets, all on 127.0.0.1 and started as real processes from one freshly registered iris model:
  floor    a bare ASGI + numpy scorer (uvicorn, orjson, model.predict inline): the reference of DESIGN.md §6
  direct   mlspec's scoring server (`python -m mlspec.runtime.serving`)
  gateway  mlspec's gateway (key auth) in front of that same server
  mlflow   `mlflow models serve --env-manager local` (only with --mlflow: slow to start, slow to serve)
The load generator is asyncio with raw HTTP/1.1 keep-alive connections (one per concurrent client): httpx costs
more per request than the servers measured here, so it would measure itself. Rounds alternate between targets so
that background load on the machine hits them alike; figures are over all rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
BODY = json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}}).encode()
KEY = "bench-key"


def register_model(root: Path) -> tuple[str, Path]:
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from mlspec.runtime.serving.integrity import model_digest

    features, target = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(features, target)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("bench", artifact_location=str(root / "artifacts"))
    with mlflow.start_run(experiment_id=experiment) as run:
        signature = infer_signature(features, target.astype("float64"))  # quiets MLflow's integer-column hint
        info = mlflow.sklearn.log_model(model, name="model", signature=signature,
                                        serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
    client = mlflow.MlflowClient(uri)
    folder = Path(client.get_logged_model(info.model_id).artifact_location.removeprefix("file://"))
    client.create_registered_model("iris-clf")
    client.create_model_version("iris-clf", info.model_uri, run_id=run.info.run_id,
                                tags={"mlspec.sha256": model_digest(folder)})
    return uri, folder


def floor_server(port: int, folder: str) -> None:
    """The floor: the least a server can do for this request (parse, predict inline, answer)."""
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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    with log.open("wb") as handle:
        return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=environment)


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


async def _client(port: int, request: bytes, count: int, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(count):
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        at = head.lower().find(b"content-length:")
        body = await reader.readexactly(int(head[at + 15:head.find(b"\r\n", at)]))
        latencies.append(time.perf_counter() - started)
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"port {port} answered {head.decode(errors='replace')}{body.decode(errors='replace')}")
    writer.close()


async def load(port: int, concurrency: int, count: int, path: str = "/invocations") -> tuple[float, list[float]]:
    """Requests per second and latencies of `count` requests from `concurrency` keep-alive clients."""
    request = (f"POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
               f"authorization: Bearer {KEY}\r\ncontent-length: {len(BODY)}\r\n\r\n").encode() + BODY
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, request, count // concurrency, latencies) for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - started), latencies


async def measure(ports: dict[str, int], concurrency: int, total: int, rounds: int) -> dict[str, dict[str, float]]:
    throughput: dict[str, list[float]] = {name: [] for name in ports}
    latencies: dict[str, list[float]] = {name: [] for name in ports}
    for port in ports.values():
        await load(port, concurrency, 300)  # warm-up: connections, caches, the scorer's estimate
    for _ in range(rounds):
        for name, port in ports.items():
            rate, seen = await load(port, concurrency, max(concurrency, total // rounds))
            throughput[name].append(rate)
            latencies[name] += seen
    results = {}
    for name in ports:
        ordered = sorted(latencies[name])
        results[name] = {"rps": statistics.median(throughput[name]), "p50": ordered[len(ordered) // 2] * 1e3,
                         "p99": ordered[int(len(ordered) * 0.99)] * 1e3, "n": len(ordered)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000, help="per target and concurrency (default 5000)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mlflow", action="store_true", help="also measure `mlflow models serve`")
    parser.add_argument("--floor-server", nargs=2, metavar=("PORT", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        return floor_server(int(args.floor_server[0]), args.floor_server[1])

    import uvloop

    with tempfile.TemporaryDirectory(prefix="mlspec-bench-") as tmp:
        root = Path(tmp)
        uri, folder = register_model(root)
        ports = {name: free_port() for name in ("floor", "direct", "gateway", *(["mlflow"] if args.mlflow else []))}
        (root / "gateway.json").write_text(json.dumps({
            "endpoint": "bench", "auth": "key", "key_hashes": [hashlib.sha256(KEY.encode()).hexdigest()],
            "deployments": {"blue": {"weight": 100, "replicas": [f"http://127.0.0.1:{ports['direct']}"]}}}))
        python = sys.executable
        commands = {
            "floor": [python, __file__, "--floor-server", str(ports["floor"]), str(folder)],
            "direct": [python, "-m", "mlspec.runtime.serving", "--model-uri", "models:/iris-clf/1", "--tracking-uri",
                       uri, "--port", str(ports["direct"])],
            "gateway": [python, "-m", "mlspec.runtime.gateway", "--config", str(root / "gateway.json"), "--port",
                        str(ports["gateway"])],
            # The folder, not models:/iris-clf/1: for a models:/ URI MLflow writes a registered_model_meta file into
            # the local store's model folder, and mlspec's server then (rightly) refuses the changed files.
            "mlflow": [python, "-m", "mlflow", "models", "serve", "-m", str(folder), "-h", "127.0.0.1",
                       "-p", str(ports.get("mlflow", 0)), "--env-manager", "local"],
        }
        # `mlflow models serve` runs `uvicorn` from PATH: this interpreter's.
        path = os.pathsep.join([str(Path(python).parent), os.environ.get("PATH", "")])
        processes = {name: launch(commands[name], root / f"{name}.log", {"MLFLOW_TRACKING_URI": uri, "PATH": path})
                     for name in ports}
        try:
            for name, port in ports.items():
                wait_ready(f"http://127.0.0.1:{port}", processes[name], root / f"{name}.log",
                           "/ping" if name == "mlflow" else "/health")
            for concurrency in args.concurrency:
                report(uvloop.run(measure(ports, concurrency, args.requests, args.rounds)), concurrency)
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                process.wait(15)


def report(results: dict[str, dict[str, float]], concurrency: int) -> None:
    print(f"\n{concurrency} concurrent client(s), single-row requests")
    print(f"{'target':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9}")
    for name, figures in results.items():
        print(f"{name:<8} {figures['rps']:>8.0f} {figures['p50']:>8.3f} {figures['p99']:>8.3f} {figures['n']:>9.0f}")
    direct, gateway, floor = results["direct"], results["gateway"], results["floor"]
    print(f"direct / floor throughput: {direct['rps'] / floor['rps']:.2f}x (target >= 0.7x)")
    if "mlflow" in results:
        print(f"direct / mlflow models serve throughput: {direct['rps'] / results['mlflow']['rps']:.1f}x "
              "(target >= 20x)")
    print(f"gateway overhead: p50 +{(gateway['p50'] / direct['p50'] - 1) * 100:.0f}%, "
          f"p99 +{(gateway['p99'] / direct['p99'] - 1) * 100:.0f}%, "
          f"throughput {(gateway['rps'] / direct['rps'] - 1) * 100:+.0f}% (target: latency <= +15%)")


if __name__ == "__main__":
    main()

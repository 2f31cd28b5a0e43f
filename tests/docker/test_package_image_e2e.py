"""`mlspec package --format image` on a real engine: the ONNX version of an iris model baked into an image that
serves it with no network, a read-only root filesystem and a non-root user, answering as the original model."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.e2e]
pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))  # the packaging tests' model helpers
from edge_models import Store, iris_frame, register  # noqa: E402

TAG = "mlspec-test-package:onnx"
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
READY_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Any, int]:
    """An iris classifier registered as a job's model is, and its ONNX version packaged from it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlspec.runtime.edge.check import Tolerance
    from mlspec.runtime.edge.package import package
    from mlspec.runtime.edge.package import register as register_packaged

    root = tmp_path_factory.mktemp("image-store")
    store = Store(root, f"sqlite:///{root / 'mlflow.db'}")
    frame = iris_frame()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(frame[COLUMNS], frame["species"])
    version = register(store, "iris-clf", model, root / "model")
    sample = root / "iris.csv"
    frame.to_csv(sample, index=False)
    packaged = package(f"models:/iris-clf/{version}", store.tracking_uri, "onnx", root / "staging", [sample],
                       Tolerance())
    register_packaged(packaged, store.tracking_uri, "iris-clf", str(version), "onnx")
    assert packaged.version is not None
    return store, model, packaged.version


def _exec_json(container: Any, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """GET or POST to the server from inside its container (it has no network but its own loopback)."""
    script = ("import json, sys, urllib.error, urllib.request\n"
              "body = sys.argv[2].encode() if len(sys.argv) > 2 else None\n"
              "request = urllib.request.Request('http://127.0.0.1:8080' + sys.argv[1], body, "
              "{'content-type': 'application/json'})\n"
              "try:\n    answer = urllib.request.urlopen(request, timeout=5)\n"
              "except urllib.error.HTTPError as error:\n    answer = error\n"
              "except OSError:\n    print(json.dumps([0, None])); sys.exit()\n"
              "print(json.dumps([answer.status, json.loads(answer.read() or b'null')]))\n")
    command = ["python", "-c", script, path] + ([json.dumps(body)] if body is not None else [])
    result = container.exec_run(command, user="1000")
    assert result.exit_code == 0, result.output.decode(errors="replace")
    status, answer = json.loads(result.output.decode().strip().splitlines()[-1])
    return int(status), answer


def test_image_serves_the_onnx_version_offline_read_only_as_non_root(
        registered: tuple[Store, Any, int], docker_client: docker.DockerClient, base_image: str,
        wheelhouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlspec.cli.main import main

    store, model, version = registered
    code = main(["package", f"iris-clf:{version}", "--format", "image", "--tracking-uri", store.tracking_uri,
                 "--base-image", base_image, "--wheelhouse", str(wheelhouse), "-o", TAG, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    built = json.loads(captured.out)
    assert built["image"] == TAG and built["size_bytes"] > 0
    assert "onnxruntime>=1.17" in built["requirements"]
    assert not any(r.startswith(("mlflow", "scikit-learn", "pandas")) for r in built["requirements"])
    print(f"image {TAG}: {built['size_bytes'] / 1e6:.0f} MB", file=sys.stderr)
    image = docker_client.images.get(TAG)
    assert image.attrs["Config"]["User"] == "mlspec"
    # A read-only root filesystem and nothing writable at all: the baked-in files are root's, so the server uses
    # them in place, with no private copy in /tmp.
    container = docker_client.containers.run(
        TAG, detach=True, network_mode="none", read_only=True, user="1000:1000", cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"], labels={"mlspec.test": "package-image"})
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while (status := _exec_json(container, "/health")[0]) != 200 and time.monotonic() < deadline:
            container.reload()
            assert container.status == "running", container.logs().decode(errors="replace")
            time.sleep(0.5)
        assert status == 200, container.logs().decode(errors="replace")
        rows = iris_frame()[COLUMNS].iloc[::3]
        status, answer = _exec_json(container, "/invocations", {"dataframe_split": {
            "columns": COLUMNS, "data": rows.to_numpy().tolist()}})
        assert status == 200, answer
        assert answer == {"predictions": model.predict(rows).tolist()}
        logs = container.logs().decode(errors="replace")
        assert f"serving model folder /opt/mlspec-model (onnx, sha256 {built['sha256'][:12]})" in logs
        # No network at all: only the loopback interface exists in the container.
        interfaces = container.exec_run(["python", "-c", "import socket; print(socket.if_nameindex())"])
        assert "eth0" not in interfaces.output.decode()
    finally:
        container.remove(force=True)
        if not os.environ.get("MLSPEC_TEST_KEEP_IMAGES"):
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(TAG, force=True)

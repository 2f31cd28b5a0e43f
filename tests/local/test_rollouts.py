"""Rollouts under load on the local engine: replicas replaced without one failed request; replicas reachable by
their owner only, over Unix sockets."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mlspec.backends.local.replica_sockets import NAME_MAX
from tests.local.conftest import mlspec, status

pytestmark = pytest.mark.e2e
CONNECTIONS = 8
BODY = b'{"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": [[5.1, 3.5, 1.4, 0.2]]}}'


class Load:
    """CONNECTIONS keep-alive clients on a thread of their own, sending until stopped; every answer but a 2xx and
    every connection error is a failure."""

    def __init__(self, port: int, key: str) -> None:
        self.request = (f"POST /invocations HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
                        f"authorization: Bearer {key}\r\ncontent-length: {len(BODY)}\r\n\r\n").encode() + BODY
        self.port, self.ok, self.failures = port, 0, []  # type: ignore[var-annotated]
        self.running = True
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _client(self) -> None:
        writer = None
        while self.running:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(self.request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"content-length: *(\d+)", head, re.I).group(1))  # type: ignore[union-attr]
                body = await reader.readexactly(length)
                if head.startswith(b"HTTP/1.1 2"):
                    self.ok += 1
                else:
                    self.failures.append(head.split(b"\r\n", 1)[0] + b" " + body[:200])
            except (OSError, asyncio.IncompleteReadError) as error:
                self.failures.append(repr(error).encode())
                writer = None
        if writer is not None:
            writer.close()

    async def _run(self) -> None:
        await asyncio.gather(*(self._client() for _ in range(CONNECTIONS)))

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.running = False
        self.thread.join(30)


def edit(spec: Path, old: str, new: str) -> None:
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new, 1))


def test_instance_count_and_model_version_changes_fail_no_request(iris: Path) -> None:
    mlspec("up", str(iris), "--yes")
    outputs = status(iris)["resources"]["endpoint/iris"]["outputs"]
    key = json.loads(mlspec("endpoint", "keys", "iris", str(iris), "--json").stdout)["primary"]
    spec = iris / "mlspec.yaml"
    with Load(outputs["port"], key) as load:
        blue = "    model: iris-clf@latest\n    instance_count: "
        edit(spec, blue + "1", blue + "2")
        mlspec("up", str(iris), "--yes")
        edit(spec, "  C: 1.0", "  C: 2.0")  # the logistic model retrains: a new version, served by new replicas
        changed = mlspec("up", str(iris), "--yes")
        assert "registered iris-clf:2" in changed.stdout
        before_rotation = load.ok
        fresh = json.loads(mlspec("endpoint", "keys", "iris", str(iris), "--regenerate", "secondary",
                                  "--json").stdout)["secondary"]
        load.request = load.request.replace(key.encode(), fresh.encode())  # the new key works once returned
        mlspec("endpoint", "keys", "iris", str(iris), "--regenerate", "primary", "--json")
    assert load.failures == [] and load.ok > before_rotation > 0
    deployments = status(iris)["resources"]["endpoint/iris"]["outputs"]["deployments"]
    assert deployments["blue"]["version"] == 2 and len(deployments["blue"]["replicas"]) == 2


def test_replicas_listen_on_owner_only_unix_sockets(iris: Path) -> None:
    mlspec("up", str(iris), "--yes")
    replicas = status(iris)["resources"]["endpoint/iris"]["outputs"]["deployments"]["blue"]["replicas"]
    assert len(replicas) == 1 and replicas[0].startswith("unix:/")
    path = Path(replicas[0].removeprefix("unix:"))
    workspace = (iris / ".mlspec" / "sockets" / "iris").resolve()
    if len(str(workspace)) + 1 + NAME_MAX <= 107:
        assert path.parent == workspace
    else:  # too long a path for a socket address: a short owner-only folder instead
        assert path.parent.name.startswith(f"mlspec-{os.geteuid()}-") and path.parent.stat().st_uid == os.geteuid()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700 and stat.S_IMODE(path.stat().st_mode) == 0o600
    answer = mlspec("endpoint", "invoke", "iris", "--data", str(iris / "request.json"), str(iris))
    assert json.loads(answer.stdout)["predictions"] == [0, 2]  # the gateway reaches its replicas
    assert connect_as_nobody(path) == "PermissionError"
    assert connect_as_nobody(path, open_folder=True) == "PermissionError"  # the file's own mode is enough too
    with socket.socket(socket.AF_UNIX) as own:  # the owner can
        own.connect(str(path))


def connect_as_nobody(path: Path, open_folder: bool = False) -> str:
    """Try to connect to the socket as user `nobody` (the tests run as root); the error's name, or "connected"."""
    folder_mode = stat.S_IMODE(path.parent.stat().st_mode)
    if open_folder:
        os.chmod(path.parent, 0o755)
    try:
        code = ("import os, socket, sys\nos.setgid(65534); os.setuid(65534)\n"
                "s = socket.socket(socket.AF_UNIX)\n"
                "try:\n    s.connect(sys.argv[1]); print('connected')\n"
                "except OSError as e:\n    print(type(e).__name__)\n")
        return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()
    finally:
        os.chmod(path.parent, folder_mode)

"""Replicas on Unix sockets: owner-only files in owner-only folders, a short folder when the path is too long,
and addresses the probes and the engine's health checks understand."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from socketserver import UnixStreamServer

import pytest

from mlspec.runtime.httpserver import bind_unix
from mlspec.runtime.probing import http_get
from mlspec.runtime.sockets import SUN_PATH_MAX, check_private_dir, http_status, socket_folder, split_url, with_path

NOBODY = 65534


def connect_as(uid: int, path: Path) -> str:
    """Connect to the socket as another user, in a process of its own: the error's name, or "connected"."""
    code = (f"import os, socket, sys\nos.setgid({uid}); os.setuid({uid})\ns = socket.socket(socket.AF_UNIX)\n"
            "try:\n    s.connect(sys.argv[1]); print('connected')\nexcept OSError as e:\n    print(type(e).__name__)\n")
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True,
                          timeout=30).stdout.strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user")
def test_only_the_owner_can_connect() -> None:
    # Under /tmp itself: pytest's own folders are closed to other users, which would hide what is tested here.
    outer = Path(tempfile.mkdtemp(prefix="mlspec-test-"))
    os.chmod(outer, 0o755)
    folder = outer / "sockets"
    folder.mkdir(mode=0o700)
    path = folder / "replica.sock"
    sock = bind_unix(str(path), "test")
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert connect_as(NOBODY, path) == "PermissionError"
        os.chmod(folder, 0o755)  # even with the folder opened, the file's mode keeps others out
        assert connect_as(NOBODY, path) == "PermissionError"
        os.chmod(path, 0o666)  # the check can fail: opened to everyone, nobody gets in
        assert connect_as(NOBODY, path) == "connected"
    finally:
        sock.close()
        shutil.rmtree(outer)


def test_a_server_refuses_a_folder_others_may_enter(tmp_path: Path) -> None:
    folder = tmp_path / "open"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    with pytest.raises(PermissionError, match="must be 0700"):
        check_private_dir(folder)
    with pytest.raises(SystemExit, match="open to other users"):
        bind_unix(str(folder / "x.sock"), "test")


def test_a_too_long_workspace_path_gets_a_short_owner_only_folder(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = Path(tempfile.mkdtemp(prefix="run-"))  # short, as /run/user/UID is
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    short = socket_folder(tmp_path / "ws", 20)
    assert short == (tmp_path / "ws").resolve()
    deep = tmp_path / ("d" * 60) / "sockets" / "iris"
    fallback = socket_folder(deep, 20)
    assert fallback.parent == runtime and fallback.name.startswith(f"mlspec-{os.geteuid()}-")
    assert len(str(fallback)) + 1 + 20 <= SUN_PATH_MAX
    assert stat.S_IMODE(fallback.stat().st_mode) == 0o700
    assert socket_folder(deep, 20) == fallback  # the same folder every time for the same workspace
    os.chmod(fallback, 0o777)  # ours but opened: closed again
    assert stat.S_IMODE(socket_folder(deep, 20).stat().st_mode) == 0o700
    shutil.rmtree(runtime)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a folder another user owns")
def test_a_fallback_folder_another_user_made_first_is_refused(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    deep = tmp_path / ("d" * 80) / "sockets" / "iris"
    squatted = socket_folder(deep, 20)
    os.chown(squatted, NOBODY, NOBODY)
    with pytest.raises(PermissionError, match="belongs to another user"):
        socket_folder(deep, 20)


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.path.encode()
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_probes_and_health_checks_reach_a_unix_address(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "r.sock"
    server = UnixStreamServer(str(path), _Health)
    server.get_request = lambda: (server.socket.accept()[0], ("local", 0))  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        address = f"unix:{path}"
        url = with_path(address, "/health")
        assert split_url(url) == (address, "/health") and split_url("http://h:1/v2/x") == ("http://h:1", "/v2/x")
        assert http_status(url, 2) == 200 and http_status(with_path(address, "/nope"), 2) == 404
        assert asyncio.run(http_get(with_path(address, "/v2/health/live"), 2)) == (404, b"/v2/health/live")
        assert http_status(f"unix:{tmp_path / 'none.sock'}:/health", 2) == 0
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket(socket.AF_UNIX) as probe, pytest.raises(OSError):  # closed: nothing answers there now
        probe.connect(str(path))

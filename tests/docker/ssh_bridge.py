"""The Docker API of an `ssh://` host on a local Unix socket: each connection is one `ssh ... docker system
dial-stdio`, as the docker CLI and pulumi-docker reach such a host (the docker SDK's own SSH support needs
paramiko, which the test environment does not have)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

CHUNK = 1 << 16


def ssh_command(host: str, ssh_opts: list[str]) -> list[str]:
    """The client command pulumi-docker runs for `host` (ssh://user@host[:port]) with the provider's sshOpts."""
    parts = urlsplit(host)
    if parts.scheme != "ssh" or not parts.hostname:
        raise ValueError(f"{host!r} is not an ssh:// Docker host")
    command = ["ssh", "-o", "BatchMode=yes", *ssh_opts]
    if parts.port:
        command += ["-p", str(parts.port)]
    if parts.username:
        command += ["-l", parts.username]
    return [*command, "--", parts.hostname, "docker system dial-stdio"]


class SshBridge:
    """Listens on `socket_path`; pumps each accepted connection through its own ssh process. `sessions` counts
    the SSH sessions opened, so a test can tell that the API was really reached over SSH."""

    def __init__(self, host: str, ssh_opts: list[str], socket_path: Path) -> None:
        self.host, self.command = host, ssh_command(host, ssh_opts)
        self.socket_path = socket_path
        self.sessions = 0
        self.errors: list[str] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(socket_path))
        self._server.listen(16)
        self._closed = False
        threading.Thread(target=self._accept, name=f"ssh-bridge-{socket_path.name}", daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket_path}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE)
            with self._lock:
                self.sessions += 1
                self._processes.append(process)
            threading.Thread(target=self._to_ssh, args=(connection, process), daemon=True).start()
            threading.Thread(target=self._from_ssh, args=(connection, process), daemon=True).start()

    @staticmethod
    def _to_ssh(connection: socket.socket, process: subprocess.Popen[bytes]) -> None:
        stdin: IO[bytes] = process.stdin  # type: ignore[assignment]
        with contextlib.suppress(OSError, ValueError):
            while data := connection.recv(CHUNK):
                stdin.write(data)
                stdin.flush()
        with contextlib.suppress(OSError, ValueError):
            stdin.close()  # the client is done sending: dial-stdio closes its side towards the engine

    def _from_ssh(self, connection: socket.socket, process: subprocess.Popen[bytes]) -> None:
        stdout: IO[bytes] = process.stdout  # type: ignore[assignment]
        with contextlib.suppress(OSError, ValueError):
            while data := stdout.read1(CHUNK):  # type: ignore[attr-defined]
                connection.sendall(data)
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_WR)
        code = process.wait()
        if code not in (0, -15):
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            with self._lock:
                self.errors.append(f"ssh exited {code}: {stderr.strip()[-500:]}")
        connection.close()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._server.close()
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            if process.poll() is None:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
        self.socket_path.unlink(missing_ok=True)

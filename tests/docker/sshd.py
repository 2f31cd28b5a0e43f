"""An SSH host for tests: an sshd container whose `docker` reaches the test engine, so `ssh ... docker system
dial-stdio` is a Docker host reached over SSH. Its image is built offline on the local base image, from
openssh-server packages downloaded on this machine (`apt-get download`) and this machine's docker CLI."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from tests.docker.engine import LABEL

ROOT = Path(__file__).resolve().parents[2]
DEBS = ROOT / ".cache" / "sshd-debs"
PACKAGES = ("openssh-server", "openssh-sftp-server", "libwrap0")  # what the base image lacks for sshd
KEYS = "/etc/ssh/mlspec"
SSHD_CONFIG = f"""Port 22
HostKey {KEYS}/host_key
AuthorizedKeysFile {KEYS}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile /run/sshd.pid
LogLevel VERBOSE
"""
DOCKERFILE = """FROM {base}
COPY root/ /
COPY docker /usr/local/bin/docker
COPY sshd_config /etc/ssh/sshd_config
RUN useradd --system --no-create-home --home-dir /run/sshd --shell /usr/sbin/nologin sshd \\
 && mkdir -p /run/sshd {keys} && chmod 0755 /run/sshd && ldconfig && /usr/local/bin/docker --version
"""


def _debs() -> list[Path]:
    """The packages' .deb files, downloaded once into .cache/sshd-debs (the only network use, on this machine)."""
    DEBS.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        if not list(DEBS.glob(f"{package}_*.deb")):
            subprocess.run(["apt-get", "download", package], cwd=DEBS, check=True, capture_output=True, timeout=300)
    return sorted(DEBS.glob("*.deb"))


def _docker_cli() -> Path:
    found = shutil.which("docker")
    if found is None:
        raise RuntimeError("no docker CLI on this machine to copy into the SSH host image")
    return Path(found).resolve()


def sshd_image(client: docker.DockerClient, base_image: str, folder: Path) -> str:
    """`mlspec-test-sshd:<digest of what it holds>`, built once and kept (like the base image)."""
    debs, cli = _debs(), _docker_cli()
    digest = hashlib.sha256()
    for part in (*debs, cli):
        digest.update(part.name.encode() + b"\0" + str(part.stat().st_size).encode() + b"\0")
    digest.update((base_image + SSHD_CONFIG + DOCKERFILE).encode())
    tag = f"mlspec-test-sshd:{digest.hexdigest()[:12]}"
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    context = folder / "sshd-image"
    (context / "root").mkdir(parents=True)
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(context / "root")], check=True, timeout=120)
    for top in ("bin", "sbin", "lib", "lib64"):  # the base image's /lib is a link to /usr/lib: copy beneath it
        if (context / "root" / top).is_dir():
            shutil.copytree(context / "root" / top, context / "root" / "usr" / top, dirs_exist_ok=True)
            shutil.rmtree(context / "root" / top)
    shutil.copy2(cli, context / "docker")
    (context / "sshd_config").write_text(SSHD_CONFIG)
    (context / "Dockerfile").write_text(DOCKERFILE.format(base=base_image, keys=KEYS))
    client.images.build(path=str(context), tag=tag, rm=True, forcerm=True)
    return tag


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mlspec-test", "-f", str(path)],
                   check=True, timeout=30)
    return (path.with_suffix(".pub")).read_text().strip()


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size, info.mode, info.uid, info.gid = len(data), 0o600, 0, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class SshHost:
    """A started sshd container: `host` is its ssh:// address, `ssh_opts` the client options that reach it with
    the throwaway key and its host key pinned (nothing read from this machine's own SSH configuration)."""

    container: str
    host: str
    ssh_opts: list[str]

    def log(self, client: docker.DockerClient) -> str:
        return client.containers.get(self.container).logs(stdout=True, stderr=True).decode(errors="replace")


def start_ssh_host(client: docker.DockerClient, image: str, session: str, folder: Path) -> SshHost:
    """Run the SSH host with the engine's socket as its /var/run/docker.sock, published on 127.0.0.1 only."""
    engine_socket = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not engine_socket.startswith("unix://"):
        raise RuntimeError(f"the SSH host needs the engine's Unix socket; DOCKER_HOST is {engine_socket}")
    client_key, host_key = folder / "client_key", folder / "host_key"
    public = _keygen(client_key)
    host_public = _keygen(host_key)
    name = f"mlspec-test-sshd-{session}"
    container = client.containers.create(
        image, ["/usr/sbin/sshd", "-D", "-e"], name=name, labels={LABEL: session},
        ports={"22/tcp": ("127.0.0.1", None)},
        volumes={engine_socket.removeprefix("unix://"): {"bind": "/var/run/docker.sock", "mode": "rw"}})
    container.put_archive("/", _tar({f"{KEYS}/host_key": host_key.read_bytes(),
                                     f"{KEYS}/authorized_keys": (public + "\n").encode()}))
    container.start()
    container.reload()
    port = int(container.attrs["NetworkSettings"]["Ports"]["22/tcp"][0]["HostPort"])
    known = folder / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_public}\n")
    _wait_for_port(port, container)
    opts = ["-F", "/dev/null", "-i", str(client_key), "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={known}",
            "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10"]
    return SshHost(name, f"ssh://root@127.0.0.1:{port}", opts)


def _wait_for_port(port: int, container: docker.models.containers.Container, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                if connection.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.2)
    logs = container.logs().decode(errors="replace")
    raise RuntimeError(f"sshd did not answer on 127.0.0.1:{port} within {timeout_s:.0f}s:\n{logs}")

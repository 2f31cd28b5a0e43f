"""Unix socket addresses (`unix:/ABS/PATH.sock`) and the owner-only folders that hold them."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import stat
import tempfile
from pathlib import Path

UNIX_PREFIX = "unix:"
SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes with its terminating NUL


def is_unix(address: str) -> bool:
    return address.startswith(UNIX_PREFIX)


def unix_path(address: str) -> str:
    """The socket file of a `unix:/ABS/PATH.sock` address."""
    return address[len(UNIX_PREFIX):]


def check_private_dir(folder: str | Path) -> None:
    """Raise PermissionError unless `folder` is a real folder of this user that no one else may enter (0700)."""
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode):
        raise PermissionError(f"{folder} is not a folder")
    if info.st_uid != os.geteuid():
        raise PermissionError(f"{folder} belongs to another user (uid {info.st_uid})")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise PermissionError(f"{folder} is open to other users (mode {stat.S_IMODE(info.st_mode):o}); it must "
                              "be 0700")


def private_dir(folder: Path) -> Path:
    """Create `folder` (and its parents) with the last one owner-only, then check it is: never trusted by name."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        info = os.lstat(folder)
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():
            os.chmod(folder, 0o700)  # ours, made before folders were owner-only: closed now
    check_private_dir(folder)
    return folder


def socket_folder(preferred: Path, longest_name: int) -> Path:
    """`preferred` when a socket named with up to `longest_name` characters fits in sun_path there; otherwise a
    short owner-only folder named after it, under $XDG_RUNTIME_DIR or the temporary folder."""
    preferred = preferred.resolve()
    if len(os.fsencode(preferred)) + 1 + longest_name <= SUN_PATH_MAX:
        return private_dir(preferred)
    digest = hashlib.sha256(os.fsencode(preferred)).hexdigest()[:12]
    name = f"mlspec-{os.geteuid()}-{digest}"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    fits = runtime and os.path.isdir(runtime) and len(os.fsencode(runtime)) + len(name) + 2 + longest_name \
        <= SUN_PATH_MAX
    return private_dir((Path(runtime) if fits and runtime else Path(tempfile.gettempdir())) / name)


def with_path(address: str, path: str) -> str:
    """A URL for `path` on a replica: http://HOST:PORT/PATH, or unix:/SOCKET:/PATH (nginx's form)."""
    return f"{address}:{path}" if is_unix(address) else address + path


def split_url(url: str) -> tuple[str, str]:
    """(address, path and query) of a URL made by `with_path`, or of a plain http:// URL."""
    if is_unix(url):
        at = url.rfind(":/")
        if at <= len(UNIX_PREFIX):
            return url, "/"
        return url[:at], url[at + 1:]
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host}", slash + path


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket: for the engine's own calls to replicas and to the gateway's control."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def http_connection(address: str, timeout: float) -> http.client.HTTPConnection:
    """A connection to `address` (http://HOST:PORT or unix:/PATH)."""
    if is_unix(address):
        return UnixHTTPConnection(unix_path(address), timeout)
    host = address.removeprefix("http://")
    return http.client.HTTPConnection(host, timeout=timeout)


def http_status(url: str, timeout: float) -> int:
    """The status of GET `url` (a with_path URL), 0 when there is no answer in time."""
    address, target = split_url(url)
    connection = http_connection(address, timeout)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException, ValueError):
        return 0
    finally:
        connection.close()

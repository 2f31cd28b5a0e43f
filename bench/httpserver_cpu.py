"""CPU time mlspec's HTTP server spends per keep-alive request (parse, handler call, render), from /proc.

Run: .venv/bin/python bench/httpserver_cpu.py [--requests 30000] [--rounds 6] [--source TREE ...]

The server's own CPU time, not wall time, so other load on the machine barely moves it: the measure to compare
two source trees' hot paths on a busy machine (pass each with --source; rounds alternate between them). The
handler answers at once with a fixed body, as the gateway's fastest path does. Target: no tree slower than the
first beyond noise (the minimum over rounds is the figure to compare).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUEST = (b"POST /invocations HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
           b"authorization: Bearer x\r\ncontent-length: 90\r\n\r\n" + b"x" * 90)
SERVER = """
import asyncio, socket, sys
from pathlib import Path
from mlspec.runtime.httpserver import serve

def handle(request, reply):
    reply((200, [(b"content-type", b"application/json")], b'{"predictions": [0]}'))

async def main():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    Path(sys.argv[1]).write_text(str(sock.getsockname()[1]))
    await serve(sock, handle, lambda path, headers: None, lambda: 1 << 20)

asyncio.run(main())
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(tree: Path, requests: int) -> float:
    """Microseconds of server CPU per request."""
    with tempfile.TemporaryDirectory() as folder:
        port_file = Path(folder) / "port"
        # In the tree's folder: `python -c` puts the working folder first on the path.
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(port_file)], cwd=tree,
                                  env={**os.environ, "PYTHONPATH": str(tree)})
        try:
            while not port_file.exists() or not port_file.read_text():
                assert server.poll() is None, "the server did not start"
                time.sleep(0.01)
            with socket.create_connection(("127.0.0.1", int(port_file.read_text()))) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for _ in range(500):  # warm-up
                    sock.sendall(REQUEST)
                    sock.recv(4096)
                before = cpu_seconds(server.pid)
                for _ in range(requests):
                    sock.sendall(REQUEST)
                    sock.recv(4096)
                return (cpu_seconds(server.pid) - before) / requests * 1e6
        finally:
            server.terminate()
            server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--source", type=Path, action="append", help="source trees to compare (default: this one)")
    options = parser.parse_args()
    trees = [tree.resolve() for tree in options.source or [REPO]]
    figures: dict[Path, list[float]] = {tree: [] for tree in trees}
    for _ in range(options.rounds):
        for tree in trees:
            figures[tree].append(measure(tree, options.requests))
    for tree, values in figures.items():
        print(f"{tree}: server CPU per request min {min(values):.1f} us, median {sorted(values)[len(values) // 2]:.1f}"
              f" us over {len(values)} rounds of {options.requests}")


if __name__ == "__main__":
    main()

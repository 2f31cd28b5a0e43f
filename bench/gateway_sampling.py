"""What the gateway's traffic record and request sampling cost per request: gateway CPU time (from /proc, so other
load barely moves it) and wall time per keep-alive request through the gateway to a replica that answers at once.

Run: .venv/bin/python bench/gateway_sampling.py [--requests 20000] [--rounds 5] [--before TREE]

Cases, in alternating rounds: the gateway of --before (a source tree without the traffic record or sampling, e.g.
a checkout of the previous revision), this tree with sampling off, and this tree sampling every request (rate 1.0,
no per-minute cap: each answered request becomes a JSON line with both bodies). Target: sampling off costs no more
than noise over --before; the figure at rate 1.0 is the price of collecting everything.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BODY = (b'{"dataframe_split": {"columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"], '
        b'"data": [[5.1, 3.5, 1.4, 0.2]]}}')
REQUEST = (b"POST /invocations HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
           b"authorization: Bearer bench-key\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY))
REPLICA = """
import asyncio, socket, sys
from mlspec.runtime.httpserver import bind_unix, serve

def handle(request, reply):
    reply((200, [(b"content-type", b"application/json")], b'{"predictions": [0]}'))

asyncio.run(serve(bind_unix(sys.argv[1], "replica"), handle, lambda path, headers: None, lambda: 1 << 20))
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_answer(sock: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += sock.recv(65536)


def measure(tree: Path, replica: str, folder: Path, sampling: bool, requests: int) -> tuple[float, float]:
    """(gateway CPU microseconds per request, wall microseconds per request)."""
    config = {"endpoint": "bench", "auth": "key", "keys": ["bench-key"],
              "deployments": {"blue": {"weight": 100, "replicas": [f"unix:{replica}"]}}}
    if sampling:
        config["sampling"] = {"folder": str(folder / "samples"), "rate": 1.0, "max_record_size": 65536,
                              "max_records_per_minute": 10**9, "retention": 3600}
    config_file = folder / "gateway.json"
    config_file.write_text(json.dumps(config))
    port = free_port()
    gateway = subprocess.Popen([sys.executable, "-P", "-m", "mlspec.runtime.gateway", "--config", str(config_file),
                                "--port", str(port)], env={**os.environ, "PYTHONPATH": str(tree)},
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port))
                break
            except ConnectionRefusedError:
                assert gateway.poll() is None and time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.05)
        with sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(1000):  # warm-up
                sock.sendall(REQUEST)
                read_answer(sock)
            cpu, started = cpu_seconds(gateway.pid), time.perf_counter()
            for _ in range(requests):
                sock.sendall(REQUEST)
                read_answer(sock)
            wall = time.perf_counter() - started
            return (cpu_seconds(gateway.pid) - cpu) / requests * 1e6, wall / requests * 1e6
    finally:
        gateway.terminate()
        gateway.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", type=Path, help="a source tree without the traffic record and sampling")
    options = parser.parse_args()
    cases = [(f"before ({options.before})", options.before.resolve(), False)] if options.before else []
    cases += [("sampling off", REPO, False), ("sampling rate 1.0", REPO, True)]
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in cases}
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        replica_socket = str(folder / "replica.sock")
        replica = subprocess.Popen([sys.executable, "-c", REPLICA, replica_socket],
                                   env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            while not Path(replica_socket).exists():
                time.sleep(0.02)
            for _ in range(options.rounds):
                for name, tree, sampling in cases:
                    figures[name].append(measure(tree, replica_socket, folder, sampling, options.requests))
            written = sum(1 for file in (folder / "samples").rglob("*.jsonl") for _ in file.open())
        finally:
            replica.terminate()
            replica.wait(10)
    for name, values in figures.items():
        cpu = sorted(v[0] for v in values)
        wall = sorted(v[1] for v in values)
        print(f"{name:<40} gateway CPU per request min {cpu[0]:6.1f} us, median {cpu[len(cpu) // 2]:6.1f} us; "
              f"wall per request min {wall[0]:6.1f} us, median {wall[len(wall) // 2]:6.1f} us")
    print(f"({options.rounds} rounds of {options.requests} requests; {written} sampled records written)")


if __name__ == "__main__":
    main()

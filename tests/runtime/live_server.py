"""A stand-in server for liveness supervisor tests: a real HTTP server on 127.0.0.1 with a live route.

`python tests/runtime/live_server.py --port N [--bind-after S] [--exit-after S --code C] [--pids FILE]
[--marker FILE --term-code C --linger S]`: answers GET /v2/health/live with 200 once bound (`--bind-after`
seconds after start); exits with `--code` after `--exit-after` seconds; `--pids` writes its pid and that of a
grandchild it forks into a session of its own (as a forked server's workers may be), which sleeps; on SIGTERM or
SIGINT it writes the signal's name to `--marker`, stops answering, lingers, and exits with `--term-code`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType


class Live(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/v2/health/live" else 404
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests read the supervisor's stderr."""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bind-after", type=float, default=0.0)
    parser.add_argument("--exit-after", type=float)
    parser.add_argument("--code", type=int, default=0)
    parser.add_argument("--pids", type=Path)
    parser.add_argument("--marker", type=Path)
    parser.add_argument("--term-code", type=int, default=0)
    parser.add_argument("--linger", type=float, default=0.0)
    args = parser.parse_args()
    started = time.monotonic()
    if args.pids:
        grandchild = os.fork()
        if grandchild == 0:
            os.setsid()
            time.sleep(600)
            os._exit(0)
        args.pids.write_text(f"{os.getpid()} {grandchild}")
    stop = threading.Event()
    signalled: list[int] = []

    def on_signal(sig: int, frame: FrameType | None) -> None:
        signalled.append(sig)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if stop.wait(args.bind_after):
        return args.term_code
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Live)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    remaining = None if args.exit_after is None else max(0.0, args.exit_after - (time.monotonic() - started))
    if not stop.wait(remaining):
        return args.code
    if args.marker:
        args.marker.write_text(signal.Signals(signalled[0]).name)
    server.shutdown()
    server.server_close()  # no longer answering: probes fail while it lingers
    time.sleep(args.linger)
    return args.term_code


if __name__ == "__main__":
    sys.exit(main())

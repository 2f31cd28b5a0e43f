"""A stand-in replica for gateway and probe tests: a real HTTP/1.1 server whose answers take `--delay` seconds.

`python tests/runtime/fake_replica.py --port N --delay S --state DIR`: POST /invocations answers after the delay;
GET /health is 200, or 503 while DIR/unready exists; GET /stats tells the most requests it held at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path


class Replica:
    def __init__(self, delay: float, state: Path, port: int) -> None:
        self.delay, self.state, self.port = delay, state, port
        self.in_flight = self.most = self.served = 0

    async def answer(self, method: bytes, path: bytes) -> tuple[int, bytes]:
        if path == b"/invocations" and method == b"POST":
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            try:
                await asyncio.sleep(self.delay)
            finally:
                self.in_flight -= 1
            self.served += 1
            return 200, json.dumps({"predictions": [0], "port": self.port}).encode()
        if path == b"/health":
            unready = (self.state / "unready").exists()
            return (503, b'{"status":"loading"}') if unready else (200, b'{"status":"ready"}')
        if path == b"/stats":
            return 200, json.dumps({"most": self.most, "served": self.served, "in_flight": self.in_flight}).encode()
        return 404, b'{"error":"no route"}'

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, path = lines[0].split(b" ")[:2]
                length = next((int(line.split(b":", 1)[1]) for line in lines[1:]
                               if line.lower().startswith(b"content-length:")), 0)
                if length:
                    await reader.readexactly(length)
                status, body = await self.answer(method, path)
                writer.write(b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                             % (status, len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args()
    replica = Replica(args.delay, args.state, args.port)
    server = await asyncio.start_server(replica.connection, args.host, args.port, backlog=512)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())

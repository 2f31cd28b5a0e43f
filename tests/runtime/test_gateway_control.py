"""The gateway in-process on real sockets: its control channel (acknowledged swaps, refused configs), the retry
rule (only requests no byte of which reached a replica go to another), and replicas on Unix sockets."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from mlspec.runtime.gateway.app import GatewayApp
from mlspec.runtime.gateway.control import Control
from mlspec.runtime.httpserver import bind, bind_unix, listen

Behaviour = str  # "answer": 200 naming the replica; "drop": read the request, close without answering;
# "answer-then-close": 200, then close the connection (as a replica draining its idle connections does)


class Replica:
    """A stand-in replica on a Unix socket that counts the requests it read."""

    def __init__(self, name: str, path: Path, behaviour: Behaviour = "answer") -> None:
        self.name, self.path, self.behaviour = name, path, behaviour
        self.read = 0
        self.health = 200  # what GET /health answers
        self.server: asyncio.AbstractServer | None = None

    @property
    def address(self) -> str:
        return f"unix:{self.path}"

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._connection, str(self.path))

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                if head.startswith(b"GET /health "):
                    writer.write(b"HTTP/1.1 %d X\r\ncontent-length: 0\r\n\r\n" % self.health)
                    await writer.drain()
                    continue
                self.read += 1
                if self.behaviour == "drop":
                    break
                body = json.dumps({"replica": self.name}).encode()
                status = 503 if self.behaviour == "loading" else 200
                writer.write(b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n\r\n%s" % (status, len(body), body))
                await writer.drain()
                if self.behaviour == "answer-then-close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()


def config(*deployments: tuple[str, int, list[str]], **extra: Any) -> dict[str, Any]:
    return {"endpoint": "e", "auth": "none", "deployments": {
        name: {"weight": weight, "replicas": replicas, **extra} for name, weight, replicas in deployments}}


async def exchange(connect: Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]], method: str, path: str,
                   body: bytes = b"") -> tuple[int, Any]:
    reader, writer = await connect
    writer.write(f"{method} {path} HTTP/1.1\r\nhost: t\r\ncontent-length: {len(body)}\r\n"
                 "connection: close\r\n\r\n".encode() + body)
    head = await reader.readuntil(b"\r\n\r\n")
    answer = await reader.read()
    writer.close()
    return int(head[9:12]), json.loads(answer) if answer else None


class Harness:
    def __init__(self, app: GatewayApp, port: int, control: Path) -> None:
        self.app, self.port, self.control = app, port, control

    async def invoke(self) -> tuple[int, Any]:
        return await exchange(asyncio.open_connection("127.0.0.1", self.port), "POST", "/invocations", b"{}")

    async def put(self, body: dict[str, Any] | bytes) -> tuple[int, Any]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await exchange(asyncio.open_unix_connection(str(self.control)), "PUT", "/config", raw)

    async def get(self, path: str) -> tuple[int, Any]:
        return await exchange(asyncio.open_unix_connection(str(self.control)), "GET", path)


@asynccontextmanager
async def gateway(tmp_path: Path, first: dict[str, Any]) -> AsyncIterator[Harness]:
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(first))
    folder = tmp_path / "control"
    folder.mkdir(mode=0o700, exist_ok=True)
    app = GatewayApp(path)
    app.start()
    sock = bind("127.0.0.1", 0, "test")
    public = await listen(sock, app.handle, app.precheck, app.max_body)
    channel = Control(app)
    control = await listen(bind_unix(str(folder / "gateway.sock"), "test"), channel.handle, channel.precheck,
                           channel.max_body)
    try:
        yield Harness(app, sock.getsockname()[1], folder / "gateway.sock")
    finally:
        public.close()
        control.close()
        app.stop()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


def raw_listener(path: Path) -> socket.socket:
    """A bare Unix socket the test plays the replica on, byte by byte (non-blocking, for the loop's sock_*)."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen()
    listener.setblocking(False)
    return listener


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    sockets = tmp_path / "s"
    sockets.mkdir(mode=0o700)
    return sockets


def test_the_answer_to_put_config_comes_after_the_swap(tmp_path: Path, folder: Path) -> None:
    async def scenario() -> None:
        old, new = Replica("old", folder / "old.sock"), Replica("new", folder / "new.sock")
        for replica in (old, new):
            await replica.start()
        async with gateway(tmp_path, config(("blue", 100, [old.address]))) as harness:
            assert (await harness.invoke())[1] == {"replica": "old"}
            status, answer = await harness.put(config(("blue", 100, [new.address])))
            assert status == 200 and set(answer) == {"config", "keys"}
            _, health = await harness.get("/health")
            assert health["config"] == answer["config"]
            old.stop()  # what the engine does once acknowledged: nothing may go to the old replica any more
            before = old.read
            for _ in range(5):
                assert await harness.invoke() == (200, {"replica": "new"})
            assert old.read == before
            status, stats = await harness.get("/stats")
            assert status == 200 and stats["deployments"]["blue"] == {
                "in_flight": 0, "queued": 0, "held": 0, "requests_total": 6, "replicas": 1, "ready": 1}
        new.stop()

    run(scenario)


def test_an_invalid_config_is_a_400_and_changes_nothing(tmp_path: Path, folder: Path) -> None:
    async def scenario() -> None:
        replica = Replica("only", folder / "only.sock")
        await replica.start()
        async with gateway(tmp_path, config(("blue", 100, [replica.address]))) as harness:
            _, health = await harness.get("/health")
            for bad in (b"{not json", config(("blue", -1, [replica.address])),
                        config(("blue", 100, ["unix:relative.sock"])), {"deployments": {}}):
                status, answer = await harness.put(bad)  # type: ignore[arg-type]
                assert status == 400 and answer["error"]
            assert (await harness.get("/health"))[1]["config"] == health["config"]
            assert await harness.invoke() == (200, {"replica": "only"})
            assert (await exchange(asyncio.open_unix_connection(str(harness.control)), "GET", "/config"))[0] == 405
        replica.stop()

    run(scenario)


def test_a_request_that_could_not_connect_goes_to_another_replica(tmp_path: Path, folder: Path) -> None:
    async def scenario() -> None:
        live = Replica("live", folder / "live.sock")
        await live.start()
        nothing = f"unix:{folder / 'nothing.sock'}"  # no server: the connection is refused, no byte sent
        async with gateway(tmp_path, config(("blue", 100, [nothing, live.address]))) as harness:
            for _ in range(4):
                assert await harness.invoke() == (200, {"replica": "live"})
        live.stop()

    run(scenario)


def test_a_request_a_replica_read_is_never_sent_again(tmp_path: Path, folder: Path) -> None:
    async def scenario() -> None:
        dropping, other = Replica("drop", folder / "drop.sock", "drop"), Replica("other", folder / "other.sock")
        for replica in (dropping, other):
            await replica.start()
        async with gateway(tmp_path, config(("blue", 100, [dropping.address]),
                                            ("green", 0, [other.address]))) as harness:
            status, answer = await harness.invoke()
            assert status == 502 and "closed the connection without answering" in answer["error"]
            assert dropping.read == 1
            await harness.put(config(("blue", 100, [dropping.address, other.address])))
            statuses = [(await harness.invoke())[0] for _ in range(6)]
            # Round-robin: the requests the dropping replica read fail; none of them is sent to the other.
            assert statuses.count(502) == dropping.read - 1 and statuses.count(200) == other.read
        for replica in (dropping, other):
            replica.stop()

    run(scenario)


def test_a_pooled_connection_the_replica_closed_is_never_written_to(tmp_path: Path, folder: Path) -> None:
    async def scenario() -> None:
        closing = Replica("closing", folder / "closing.sock", "answer-then-close")
        await closing.start()
        async with gateway(tmp_path, config(("blue", 100, [closing.address]))) as harness:
            for _ in range(5):
                assert await harness.invoke() == (200, {"replica": "closing"})
                await asyncio.sleep(0.05)  # the close reaches the gateway: that pooled connection is let go
        closing.stop()

    run(scenario)


def test_a_replica_that_refused_a_connection_gets_no_request_until_it_is_ready(tmp_path: Path,
                                                                              folder: Path) -> None:
    """As after a kill -9: the supervisor restarts it, and it answers 503 while it loads its model."""
    async def scenario() -> None:
        steady, restarted = Replica("steady", folder / "steady.sock"), Replica("restarted", folder / "r.sock")
        for replica in (steady, restarted):
            await replica.start()
        slow_probe = {"initial_delay": 0, "period": 30, "timeout": 1, "failure_threshold": 3,
                      "success_threshold": 1}
        async with gateway(tmp_path, config(("blue", 100, [steady.address, restarted.address]),
                                            readiness=slow_probe)) as harness:
            await asyncio.sleep(0.6)  # the runner has taken its targets
            restarted.stop()
            restarted.path.unlink()
            assert [(await harness.invoke())[0] for _ in range(4)] == [200] * 4  # retried on the steady one
            restarted.health = 503  # back, loading
            restarted.read = 0
            await restarted.start()
            for _ in range(10):
                assert await harness.invoke() == (200, {"replica": "steady"})
                await asyncio.sleep(0.03)
            restarted.health = 200  # ready: back in rotation at once, not a probe period (30 s) later
            for _ in range(40):
                await asyncio.sleep(0.05)
                if restarted.address not in harness.app.router.unready:
                    break
            answers = [(await harness.invoke())[1]["replica"] for _ in range(6)]
            assert answers.count("restarted") == 3 and restarted.read == 3
        for replica in (steady, restarted):
            replica.stop()

    run(scenario)


def test_a_request_written_to_a_connection_whose_replica_is_gone_counts_as_not_sent(folder: Path) -> None:
    """The replica died (kill -9) while its connection sat in the pool, before the gateway saw the close: the
    write fails at once with not one byte sent, so the request may go to another replica."""
    async def scenario() -> None:
        from mlspec.runtime.gateway.upstream import Pool, Response, UpstreamError

        loop = asyncio.get_running_loop()
        listener = raw_listener(folder / "raw.sock")
        pool = Pool()
        outcomes: list[tuple[Response | None, Exception | None]] = []
        answered = asyncio.Event()

        def done(response: Response | None, error: Exception | None) -> None:
            outcomes.append((response, error))
            answered.set()

        request = b"POST /invocations HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n\r\n"
        pool.send(str(folder / "raw.sock"), 0, request, 5, done)
        server_side, _ = await loop.sock_accept(listener)
        assert await loop.sock_recv(server_side, 4096) == request
        await loop.sock_sendall(server_side, b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        await answered.wait()
        assert outcomes[0][0] is not None and outcomes[0][0].status == 200  # its connection is pooled now
        answered.clear()
        server_side.close()  # gone, and the gateway's loop has not yet seen it
        pool.send(str(folder / "raw.sock"), 0, request, 5, done)
        await answered.wait()
        error = outcomes[1][1]
        assert isinstance(error, UpstreamError) and error.connect, error
        pool.close()
        listener.close()

    run(scenario)


@pytest.mark.parametrize(("reads_it", "may_go_elsewhere"), [(False, True), (True, False)])
def test_a_replica_that_dies_counts_as_not_sent_only_if_it_never_read_the_request(
        folder: Path, reads_it: bool, may_go_elsewhere: bool) -> None:
    """A replica killed while the request waited unread in its socket cannot have acted on it (the connection is
    reset); one that had read it may have (the connection just ends): that one is never sent twice."""
    async def scenario() -> None:
        from mlspec.runtime.gateway.upstream import Pool, Response, UpstreamError

        loop = asyncio.get_running_loop()
        listener = raw_listener(folder / "raw.sock")
        pool = Pool()
        answered: asyncio.Future[Exception | None] = loop.create_future()

        def done(response: Response | None, error: Exception | None) -> None:
            answered.set_result(error)

        pool.send(str(folder / "raw.sock"), 0, b"POST /invocations HTTP/1.1\r\ncontent-length: 0\r\n\r\n", 5, done)
        server_side, _ = await loop.sock_accept(listener)
        if reads_it:
            await loop.sock_recv(server_side, 4096)
        else:
            await asyncio.sleep(0.2)  # the request is in the replica's queue, unread
        server_side.close()
        error = await answered
        assert isinstance(error, UpstreamError) and error.connect is may_go_elsewhere, error
        pool.close()
        listener.close()

    run(scenario)


def test_a_replica_that_answers_not_ready_leaves_the_rotation_until_its_probe_passes(tmp_path: Path,
                                                                                    folder: Path) -> None:
    async def scenario() -> None:
        steady, loading = Replica("steady", folder / "steady.sock"), Replica("loading", folder / "l.sock", "loading")
        for replica in (steady, loading):
            await replica.start()
        probe = {"initial_delay": 30, "period": 30, "timeout": 1, "failure_threshold": 3, "success_threshold": 1}
        async with gateway(tmp_path, config(("blue", 100, [loading.address, steady.address]),
                                            readiness=probe)) as harness:
            await asyncio.sleep(0.6)  # the runner has taken its targets (first probe in 30 s)
            loading.health = 503
            statuses = [(await harness.invoke())[0] for _ in range(8)]
            assert statuses.count(503) == loading.read == 1  # the one it answered; none after
            loading.behaviour, loading.health = "answer", 200
            for _ in range(40):
                await asyncio.sleep(0.05)
                if loading.address not in harness.app.router.unready:
                    break
            assert {(await harness.invoke())[1]["replica"] for _ in range(4)} == {"steady", "loading"}
        for replica in (steady, loading):
            replica.stop()

    run(scenario)

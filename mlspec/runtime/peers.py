"""A lifeline between the nodes of a job run apart (a container or pod each): none waits on a peer that failed.

Node 0 listens on a TCP port; every other node connects to it at start (retrying while node 0 starts, within
`connect_s`), says which node it is and holds the connection. A node whose run ends writes its exit code and
closes. End-of-file without a code, or a non-zero code, from any peer means the job failed: node 0 sets the stop
event its command waits on (the runner then stops the command's process group) and names that node. A node that
loses node 0 stops the same way. Node 0 registers models only once every peer has reported 0 (`settle`).

Nothing on the line is trusted beyond this: the port is reachable only on the job's own network.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from mlspec.runtime.jobrun import PeerLink

HELLO = "hello"
EXIT = "exit"
RETRY_S = 0.5  # between attempts to reach node 0 while it starts
# A peer whose host vanishes sends no FIN: keepalive probes notice it within about IDLE + INTERVAL * COUNT seconds.
KEEPALIVE = {"TCP_KEEPIDLE": 10, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}


class Peers:
    """One node's end of the lifeline. `failure` says, once set, which node failed and how; `stop` is set with it."""

    def __init__(self, link: PeerLink, stop: threading.Event) -> None:
        self.link = link
        self.stop = stop
        self.failure: str | None = None
        self._closed = False
        self._changed = threading.Condition()

    def _fail(self, message: str) -> None:
        with self._changed:
            if self._closed or self.failure is not None:
                return
            self.failure = message
            self._changed.notify_all()
        self.stop.set()

    def settle(self) -> str | None:
        """After this node's command succeeded: why the job failed elsewhere, or None when it did not."""
        return self.failure

    def finish(self, code: int) -> None:
        """This node's run is over with exit code `code`: tell who needs to know and let go of the lifeline."""
        raise NotImplementedError


class Leader(Peers):
    """Node 0: accepts one connection from every other node and reads their exit codes."""

    def __init__(self, link: PeerLink, stop: threading.Event) -> None:
        super().__init__(link, stop)
        self.connected: set[int] = set()
        self.codes: dict[int, int] = {}
        self._connections: list[socket.socket] = []
        self._deadline = threading.Timer(link.connect_s, self._check_connected)
        self._deadline.daemon = True
        try:
            self._server: socket.socket | None = socket.create_server((link.listen, link.port))
        except OSError as error:
            self._server = None
            self._fail(f"node 0 cannot listen on port {link.port}: {error.strerror or error}")
            return
        self._server.settimeout(0.5)  # the accept loop looks at `_closed` this often
        threading.Thread(target=self._accept, args=(self._server,), name="peers-accept", daemon=True).start()
        self._deadline.start()

    @property
    def _others(self) -> set[int]:
        return set(range(1, self.link.nodes))

    def _accept(self, server: socket.socket) -> None:
        while not self._closed:
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by finish()
            _keep_alive(connection)
            with self._changed:
                if self._closed:
                    connection.close()
                    return
                self._connections.append(connection)
            threading.Thread(target=self._read, args=(connection,), name="peers-read", daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        node: int | None = None
        with contextlib.suppress(OSError), connection.makefile("r", encoding="ascii", errors="replace") as lines:
            for line in lines:
                word, _, text = line.strip().partition(" ")
                value = _number(text)
                if word == HELLO and node is None and value in self._others:
                    node = value
                    with self._changed:
                        self.connected.add(value)
                        self._changed.notify_all()
                elif word == EXIT and node is not None and value is not None:
                    with self._changed:
                        self.codes[node] = value
                        self._changed.notify_all()
                    if value != 0:
                        self._fail(f"node {node} failed with exit code {value}")
                    return
        if node is not None:
            self._fail(f"node {node} stopped without reporting an exit code (its connection to node 0 closed)")

    def _check_connected(self) -> None:
        missing = sorted(self._others - self.connected)
        if missing:
            self._fail(f"node {', '.join(map(str, missing))} did not connect to node 0 (port {self.link.port}) "
                       f"within {self.link.connect_s:g} s")

    def settle(self) -> str | None:
        """Wait (at most `wait_s`) until every other node has reported its exit code; why the job failed, or None."""
        end = time.monotonic() + self.link.wait_s
        with self._changed:
            while self.failure is None and set(self.codes) != self._others:
                left = end - time.monotonic()
                if left <= 0:
                    waiting = ", ".join(map(str, sorted(self._others - set(self.codes))))
                    return (f"node {waiting} did not report an exit code within {self.link.wait_s:g} s after node "
                            "0's command succeeded")
                self._changed.wait(left)
        return self.failure

    def finish(self, code: int) -> None:
        """Close the port and every connection: a node still running sees node 0 gone and stops."""
        with self._changed:
            self._closed = True
            connections = list(self._connections)
        self._deadline.cancel()
        if self._server is not None:
            self._server.close()
        for connection in connections:
            _close(connection)


class Follower(Peers):
    """Node 1 and above: holds a connection to node 0 from start to end."""

    def __init__(self, link: PeerLink, stop: threading.Event) -> None:
        super().__init__(link, stop)
        self._connection: socket.socket | None = None
        self._connect()

    def _connect(self) -> None:
        """Reach node 0, retrying while it starts; a failure to reach it within `connect_s` fails this node."""
        where = f"{self.link.leader}:{self.link.port}"
        end = time.monotonic() + self.link.connect_s
        problem = "no attempt made"
        while not self.stop.is_set():
            try:
                connection = socket.create_connection((self.link.leader, self.link.port),
                                                      timeout=max(0.1, min(5.0, end - time.monotonic())))
            except OSError as error:
                problem = str(error) or type(error).__name__
            else:
                connection.settimeout(None)
                _keep_alive(connection)
                connection.sendall(f"{HELLO} {self.link.node}\n".encode())
                self._connection = connection
                threading.Thread(target=self._watch, args=(connection,), name="peers-watch", daemon=True).start()
                return
            left = end - time.monotonic()
            if left <= 0:
                self._fail(f"cannot reach node 0 at {where} within {self.link.connect_s:g} s ({problem})")
                return
            time.sleep(min(RETRY_S, left))

    def _watch(self, connection: socket.socket) -> None:
        # Node 0 never writes: a read returns only when its end closes (node 0 is over) or the link breaks.
        with contextlib.suppress(OSError):
            while connection.recv(64):
                pass
        self._fail("node 0 stopped before this node finished (its connection closed)")

    def finish(self, code: int) -> None:
        with self._changed:
            self._closed = True
        if self._connection is None:
            return
        with contextlib.suppress(OSError):
            self._connection.sendall(f"{EXIT} {code}\n".encode())
        _close(self._connection)


def join_peers(link: PeerLink, stop: threading.Event) -> Peers:
    """This node's end of the lifeline: node 0 listens, the others connect (blocking, within `connect_s`); what
    went wrong doing so is already its `failure`."""
    return Leader(link, stop) if link.node == 0 else Follower(link, stop)


def _number(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _keep_alive(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in KEEPALIVE.items():
            if hasattr(socket, option):
                connection.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _close(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
    connection.close()

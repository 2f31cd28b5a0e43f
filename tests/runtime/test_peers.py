"""The peer lifeline between a job's nodes, over real TCP sockets on 127.0.0.1: node 0 goes on only once every
other node reported success, and learns within seconds that one failed, died or never came; a node that loses
node 0 stops too."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mlspec.runtime.jobrun import PeerLink
from mlspec.runtime.peers import Follower, Leader, join_peers

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _link(node: int, port: int, nodes: int = 2, **fields: float) -> PeerLink:
    return PeerLink(node=node, nodes=nodes, leader="127.0.0.1", port=port, listen="127.0.0.1",
                    **{"connect_s": 10.0, "wait_s": 10.0, **fields})


def test_node_zero_goes_on_once_every_peer_reported_success() -> None:
    port = _free_port()
    leader = join_peers(_link(0, port, nodes=3), threading.Event())
    followers = [join_peers(_link(node, port, nodes=3), threading.Event()) for node in (1, 2)]
    assert isinstance(leader, Leader) and all(isinstance(f, Follower) for f in followers)
    outcome: list[str | None] = []
    settling = threading.Thread(target=lambda: outcome.append(leader.settle()))
    settling.start()
    followers[0].finish(0)
    time.sleep(0.3)
    assert settling.is_alive()  # node 2 has not reported yet
    followers[1].finish(0)
    settling.join(5)
    assert outcome == [None] and not leader.stop.is_set()
    leader.finish(0)
    assert all(f.failure is None and not f.stop.is_set() for f in followers)  # they had finished: no alarm


def test_a_peer_that_fails_stops_node_zero_and_is_named() -> None:
    port = _free_port()
    stop = threading.Event()
    leader = join_peers(_link(0, port), stop)
    follower = join_peers(_link(1, port), threading.Event())
    follower.finish(3)
    assert stop.wait(5)
    assert leader.failure == "node 1 failed with exit code 3"
    assert leader.settle() == "node 1 failed with exit code 3"
    leader.finish(1)


def test_a_peer_killed_stops_node_zero_within_seconds() -> None:
    port = _free_port()
    stop = threading.Event()
    leader = join_peers(_link(0, port), stop)
    code = ("import sys, threading, time\n"
            "from mlspec.runtime.jobrun import PeerLink\n"
            "from mlspec.runtime.peers import join_peers\n"
            f"peers = join_peers(PeerLink(node=1, nodes=2, leader='127.0.0.1', port={port}), threading.Event())\n"
            "print('connected' if peers.failure is None else peers.failure, flush=True)\n"
            "time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    peer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert peer.stdout is not None and peer.stdout.readline().strip() == "connected"
        assert not stop.is_set()
        os.kill(peer.pid, signal.SIGKILL)
        killed = time.monotonic()
        assert stop.wait(5), "node 0 did not notice its peer die"
        assert time.monotonic() - killed < 5
        assert leader.failure is not None and leader.failure.startswith("node 1 stopped without reporting")
    finally:
        peer.kill()
        peer.wait()
        leader.finish(1)


def test_a_node_that_loses_node_zero_stops() -> None:
    port = _free_port()
    leader = join_peers(_link(0, port), threading.Event())
    stop = threading.Event()
    follower = join_peers(_link(1, port), stop)
    assert follower.failure is None and not stop.is_set()
    leader.finish(1)  # node 0's run is over (its command failed): its end of every connection closes
    assert stop.wait(5)
    assert follower.failure == "node 0 stopped before this node finished (its connection closed)"
    follower.finish(143)


def test_a_peer_that_never_connects_fails_node_zero_in_bounded_time() -> None:
    stop = threading.Event()
    started = time.monotonic()
    leader = join_peers(_link(0, _free_port(), nodes=3, connect_s=1.0), stop)
    follower = join_peers(_link(1, leader.link.port, nodes=3), threading.Event())
    assert stop.wait(5)
    assert 0.9 < time.monotonic() - started < 5
    assert leader.failure == f"node 2 did not connect to node 0 (port {leader.link.port}) within 1 s"
    follower.finish(0)
    leader.finish(1)


def test_a_node_that_cannot_reach_node_zero_fails_in_bounded_time() -> None:
    started = time.monotonic()
    follower = join_peers(_link(1, _free_port(), connect_s=1.5), threading.Event())
    assert 1.4 < time.monotonic() - started < 4
    assert follower.stop.is_set() and follower.failure is not None
    assert follower.failure.startswith("cannot reach node 0 at 127.0.0.1:") and "within 1.5 s" in follower.failure


def test_node_zero_waits_for_peers_reports_in_bounded_time() -> None:
    port = _free_port()
    leader = join_peers(_link(0, port, wait_s=0.5), threading.Event())
    follower = join_peers(_link(1, port), threading.Event())
    started = time.monotonic()
    assert leader.settle() == "node 1 did not report an exit code within 0.5 s after node 0's command succeeded"
    assert time.monotonic() - started < 3
    follower.finish(0)
    leader.finish(1)


def test_a_port_taken_fails_node_zero_at_once() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        leader = join_peers(_link(0, port), threading.Event())
    assert leader.stop.is_set() and leader.failure is not None
    assert leader.failure.startswith(f"node 0 cannot listen on port {port}")
    leader.finish(1)


@pytest.mark.parametrize("line", [b"hello 7\n", b"hello x\n", b"exit 0\n"])
def test_a_stranger_on_the_port_is_no_peer(line: bytes) -> None:
    port = _free_port()
    leader = join_peers(_link(0, port, connect_s=0.8), threading.Event())
    with socket.create_connection(("127.0.0.1", port)) as stranger:
        stranger.sendall(line)
    assert leader.stop.wait(5)
    assert leader.failure is not None and leader.failure.startswith("node 1 did not connect")  # not "node 7"
    leader.finish(1)

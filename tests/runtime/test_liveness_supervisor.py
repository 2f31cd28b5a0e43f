"""`python -m mlspec.runtime.liveness`, with real processes: a server that stops answering its live route is
stopped with its whole tree and the supervisor exits non-zero (so Docker's restart policy starts the container
again); otherwise the supervisor exits as its server did and hands it SIGTERM and SIGINT untouched."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mlspec.runtime.liveness import KILL_GRACE_S, LIVENESS_EXIT, parse_args
from mlspec.runtime.procfs import stat_fields

REPO = Path(__file__).resolve().parents[2]
SERVER = Path(__file__).with_name("live_server.py")
SLACK_S = 4.0  # process starts on a busy machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def supervise(port: int, probe: dict[str, float], *server: str) -> subprocess.Popen[str]:
    options = [item for name, value in probe.items() for item in (f"--{name.replace('_', '-')}", f"{value:g}")]
    argv = [sys.executable, "-m", "mlspec.runtime.liveness", "--url", f"http://127.0.0.1:{port}/v2/health/live",
            *options, "--", sys.executable, str(SERVER), "--port", str(port), *server]
    return subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})


def answering(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/live", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def wait_until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def alive(pid: int) -> bool:
    fields = stat_fields(pid)
    return fields is not None and fields[0] != b"Z"


def finish(supervisor: subprocess.Popen[str], timeout: float) -> tuple[int, str]:
    try:
        _, err = supervisor.communicate(timeout=timeout)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.communicate()
    return supervisor.returncode, err


def test_a_frozen_server_is_stopped_with_its_whole_tree_and_the_supervisor_exits_non_zero(tmp_path: Path) -> None:
    """A stopped (SIGSTOP) server holds its port but answers nothing, as a hung one does: after failure_threshold
    failed probes its tree goes (SIGTERM stays pending on a frozen process: SIGKILL after the grace), the
    grandchild in a session of its own included, and the message says which URL failed and how often."""
    port, pids = free_port(), tmp_path / "pids"
    probe = {"initial_delay": 0.3, "period": 0.3, "timeout": 0.3, "failure_threshold": 3}
    supervisor = supervise(port, probe, "--pids", str(pids))
    wait_until(lambda: pids.exists() and pids.read_text() and answering(port))
    server, grandchild = map(int, pids.read_text().split())
    frozen = time.monotonic()
    os.kill(server, signal.SIGSTOP)
    code, err = finish(supervisor, timeout=probe["period"] * 3 + probe["timeout"] + KILL_GRACE_S + SLACK_S)
    took = time.monotonic() - frozen
    assert code == LIVENESS_EXIT, err
    assert took >= probe["period"] * (probe["failure_threshold"] - 1)  # not before the threshold
    assert f"http://127.0.0.1:{port}/v2/health/live failed 3 probes in a row" in err
    assert "period 0.3s, timeout 0.3s, failure_threshold 3" in err
    assert not alive(server) and not alive(grandchild)


@pytest.mark.parametrize("exit_code", [0, 3])
def test_the_supervisor_exits_as_its_healthy_server_did(tmp_path: Path, exit_code: int) -> None:
    port = free_port()
    # Probed from the start, every 0.1 s; 40 failures in a row (4 s) leave a loaded machine time to start Python
    # and bind the port, so only a probe that wrongly fails a healthy server could stop it.
    supervisor = supervise(port, {"initial_delay": 0, "period": 0.1, "timeout": 0.5, "failure_threshold": 40},
                           "--exit-after", "0.8", "--code", str(exit_code))
    code, err = finish(supervisor, timeout=0.8 + SLACK_S)
    assert code == exit_code and "liveness" not in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_reaches_the_server_which_drains_as_it_decides(tmp_path: Path, sig: signal.Signals) -> None:
    """The server closes its port on the signal and lingers longer than its probe would allow (three failures
    within 0.6 s of the signal or of the initial delay): a stopping server is not the probe's to kill, and the
    supervisor exits with the server's own code."""
    port, marker = free_port(), tmp_path / "marker"
    probe = {"initial_delay": 1, "period": 0.2, "timeout": 0.2, "failure_threshold": 3}
    supervisor = supervise(port, probe, "--marker", str(marker), "--term-code", "7", "--linger", "1.5")
    wait_until(lambda: answering(port))
    supervisor.send_signal(sig)
    code, err = finish(supervisor, timeout=1.5 + SLACK_S)
    assert marker.read_text() == sig.name
    assert code == 7 and "liveness" not in err, err


@pytest.mark.parametrize(("initial_delay", "expected"), [(3, 0), (0, LIVENESS_EXIT)])
def test_a_slow_start_within_the_initial_delay_is_left_alone(initial_delay: float, expected: int) -> None:
    """The server binds its port 0.5 s after it starts: probing only after the initial delay (which leaves a
    loaded machine seconds to start Python) it is never found down; probing at once (the control) it is, and
    stopped."""
    port = free_port()
    supervisor = supervise(port, {"initial_delay": initial_delay, "period": 0.2, "timeout": 0.2,
                                  "failure_threshold": 2}, "--bind-after", "0.5", "--exit-after", "3.5")
    code, err = finish(supervisor, timeout=3.5 + KILL_GRACE_S + SLACK_S)
    assert code == expected, err


def test_a_missing_command_or_a_zero_period_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--url", "http://127.0.0.1:1/"], ["--url", "http://127.0.0.1:1/", "--period", "0", "--", "true"]):
        with pytest.raises(SystemExit):
            parse_args(argv)
    assert parse_args(["--url", "u", "--", "server", "--port", "1"]).command == ["server", "--port", "1"]


def test_a_command_that_cannot_start_exits_127(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "mlspec.runtime.liveness", "--url", "http://127.0.0.1:1/", "--",
            str(tmp_path / "missing")]
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                          timeout=30, check=False)
    assert done.returncode == 127 and "cannot start" in done.stderr

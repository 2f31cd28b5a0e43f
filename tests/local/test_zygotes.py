"""The supervisor's side of warm forks: exit statuses of replicas it inherits, stray zombies, zygote keys."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from mlspec.backends.local.state import ProcessRow
from mlspec.backends.local.supervisor_start import python_command
from mlspec.backends.local.zygotes import fork_of
from mlspec.runtime.jobrun import NodeLimits
from mlspec.runtime.launch import limited_argv

# Each scenario runs in a process of its own: a subreaper inherits every orphan below it, which the test runner
# must not become.
PRELUDE = """
import json, os, sys, time
from mlspec.backends.local.zygotes import ForkedReplica, become_subreaper, reap_strays
assert become_subreaper()

def double_fork(code, linger_s, live_s):
    # As the zygote does: a first child forks the replica, passes its pid on, and exits (here after linger_s).
    read, write = os.pipe()
    first = os.fork()
    if first == 0:
        pid = os.fork()
        if pid == 0:
            time.sleep(live_s)
            os._exit(code)
        os.write(write, str(pid).encode())
        time.sleep(linger_s)
        os._exit(0)
    os.close(write)
    return first, int(os.read(read, 32))
"""


def scenario(body: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_an_inherited_replica_gives_its_real_exit_code() -> None:
    found = scenario("""
        first, pid = double_fork(3, linger_s=0.5, live_s=1.0)
        replica = ForkedReplica(pid)
        early = replica.poll()  # still the first child's: not ours to wait for yet, and running
        os.waitpid(first, 0)
        deadline = time.monotonic() + 10
        while replica.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        print(json.dumps({"early": early, "code": replica.poll(), "parent_gone": first != pid}))
    """)
    assert found == {"early": None, "code": 3, "parent_gone": True}


def test_a_replica_that_exits_before_it_is_inherited_is_still_read() -> None:
    found = scenario("""
        first, pid = double_fork(3, linger_s=0.5, live_s=0.0)
        replica = ForkedReplica(pid)
        time.sleep(0.2)  # it is a zombie of the first child now
        early = replica.poll()
        os.waitpid(first, 0)
        deadline = time.monotonic() + 10
        while replica.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        print(json.dumps({"early": early, "code": replica.poll()}))
    """)
    assert found == {"early": None, "code": 3}


def test_a_killed_replica_gives_minus_the_signal() -> None:
    found = scenario("""
        import signal
        first, pid = double_fork(0, linger_s=0.0, live_s=30.0)
        os.waitpid(first, 0)
        replica = ForkedReplica(pid)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while replica.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        print(json.dumps({"code": replica.poll()}))
    """)
    assert found == {"code": -9}


def test_stray_zombies_are_reaped_and_tracked_ones_left_to_their_owner() -> None:
    found = scenario("""
        def state(pid):
            try:
                return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
            except OSError:
                return "gone"

        first, stray = double_fork(0, linger_s=0.0, live_s=0.1)
        os.waitpid(first, 0)
        second, tracked = double_fork(5, linger_s=0.0, live_s=0.1)
        os.waitpid(second, 0)
        deadline = time.monotonic() + 10
        while (state(stray) != "Z" or state(tracked) != "Z") and time.monotonic() < deadline:
            time.sleep(0.02)
        reaped = reap_strays({tracked})
        print(json.dumps({"reaped": reaped == [stray], "stray": state(stray), "tracked": state(tracked),
                          "code": ForkedReplica(tracked).poll()}))
    """)
    assert found == {"reaped": True, "stray": "gone", "tracked": "Z", "code": 5}


def row(argv: list[str], env: dict[str, str] | None = None, cwd: str = "/a") -> ProcessRow:
    return ProcessRow(id="e/blue/g/0", owner="e", argv=argv, env=env or {}, cwd=cwd, log="/dev/null", health=None)


def key(argv: list[str], env: dict[str, str] | None = None, base: dict[str, str] | None = None,
        cwd: str = "/a") -> str:
    found = fork_of(row(argv, env, cwd), base or {"PATH": "/usr/bin"})
    assert found is not None, argv
    return found.key


SERVER = python_command("mlspec.runtime.serving", "--model-uri", "models:/m/1")


def test_zygotes_are_kept_apart_by_what_a_fork_cannot_change() -> None:
    plain = key(SERVER)
    assert key(SERVER, cwd="/b") == plain  # a child changes folder itself
    assert key(SERVER, {"MLSPEC_PROCESS_ID": "x"}) == plain  # the marks are each child's own
    assert key([*SERVER, "--port", "2"]) == plain  # so are its arguments
    assert key(SERVER, {"OMP_NUM_THREADS": "1"}) != plain  # read at import time
    assert key(SERVER, base={"PATH": "/usr/bin", "OMP_NUM_THREADS": "1"}) != plain
    assert key(["/other/python", *SERVER[1:]]) != plain
    assert fork_of(row(python_command("mlspec.runtime.gateway")), {}) is None


def test_a_replica_within_limits_is_forked_with_its_launcher_and_the_node_environment() -> None:
    one_core = limited_argv(SERVER, NodeLimits(cpus=1, memory=2**30), 0, identity="MLSPEC_PROCESS_ID")
    found = fork_of(row(one_core), {"PATH": "/usr/bin"})
    assert found is not None and found.module == "mlspec.runtime.nodes" and found.python == SERVER[0]
    assert found.argv[-len(SERVER) - 1:] == ["--", *SERVER]
    assert found.env == {"PATH": "/usr/bin", "OMP_NUM_THREADS": "1"}  # what the launcher gives its node
    assert found.key == key(SERVER, {"OMP_NUM_THREADS": "1"})  # the same warm process as such a plain replica
    other_slot = limited_argv([*SERVER, "--port", "2"], NodeLimits(cpus=1, memory=2**30), 1, identity="X")
    assert key(other_slot) == found.key
    own = fork_of(row(one_core, {"OMP_NUM_THREADS": "3"}), {})
    assert own is not None and own.env["OMP_NUM_THREADS"] == "3"  # the launcher leaves a row's own alone
    gpu = limited_argv(SERVER, NodeLimits(gpus=1), 0)
    assert fork_of(row(gpu), {}) is None  # a GPU is taken at import: started afresh
    assert fork_of(row(limited_argv(python_command("mlspec.runtime.gateway"), NodeLimits(cpus=1), 0)), {}) is None

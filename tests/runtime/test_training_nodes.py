"""Jobs on several nodes, under torchrun, and within a node's CPU, memory and GPU share, on real processes."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from mlspec.runtime.execute import run_command
from mlspec.runtime.jobrun import NodeLimits
from mlspec.runtime.launch import job_argv
from mlspec.runtime.limits import (
    core_count,
    kill_tree,
    local_gpus,
    node_cores,
    node_gpus,
    process_table,
    size_text,
    tree,
    tree_rss,
)

DDP = Path(__file__).with_name("ddp_allreduce.py")


# --- how a node's share is worked out -----------------------------------------------------------------------------

def test_fractional_cpus_round_up_to_whole_cores() -> None:
    assert [core_count(c) for c in (0.25, 1, 1.5, 2)] == [1, 1, 2, 2]


def test_nodes_get_their_own_cores_and_share_them_only_when_there_are_too_few() -> None:
    assert [node_cores(i, 1, [0, 1, 2, 3]) for i in range(4)] == [[0], [1], [2], [3]]
    assert [node_cores(i, 2, [4, 5, 6, 7]) for i in range(2)] == [[4, 5], [6, 7]]
    assert [node_cores(i, 1, [0, 1]) for i in range(3)] == [[0], [1], [0]]  # a third node wraps around
    assert node_cores(0, 8, [0, 1]) == [0, 1]  # asking for more than there is: all of them


def test_gpus_are_those_cuda_visible_devices_allows_split_between_nodes() -> None:
    available = local_gpus({"CUDA_VISIBLE_DEVICES": "3, 5,6"})
    assert available == ["3", "5", "6"]
    assert [node_gpus(i, 1, available) for i in range(4)] == [["3"], ["5"], ["6"], ["3"]]  # the 4th shares
    assert node_gpus(1, 2, available) == ["6", "3"] and node_gpus(0, 5, available) == available
    assert local_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []


def test_sizes_read_as_a_spec_writes_them() -> None:
    assert [size_text(n) for n in (256 * 2**20, 3 * 2**29, 2 * 2**30, 512)] == ["256Mi", "1.5Gi", "2Gi", "512"]


def test_tree_rss_counts_the_process_and_its_children() -> None:
    assert tree_rss(os.getpid()) > 10 * 2**20
    assert tree_rss(2**22 + 12345) == 0  # no such process


def test_the_tree_read_from_its_own_entries_is_the_tree_a_full_scan_finds() -> None:
    proc = subprocess.Popen(["bash", "-c", "sleep 30 & sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 10
        while len(tree(proc.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sorted(tree(proc.pid)) == sorted(tree(proc.pid, process_table())) and len(tree(proc.pid)) == 3
        assert proc.pid in tree(os.getpid())
    finally:
        kill_tree(proc.pid)
        proc.wait()


def test_a_plain_job_is_its_command_alone(make_run) -> None:
    run = make_run("echo hi")
    assert job_argv(run, "echo hi") == ["bash", "-c", "echo hi"]
    limited = make_run("echo hi", limits=NodeLimits(memory=2**28))
    assert job_argv(limited, "echo hi")[1:3] == ["-m", "mlspec.runtime.nodes"]


# --- nodes and limits on real processes ---------------------------------------------------------------------------

@pytest.mark.e2e
def test_each_node_runs_the_command_with_its_rank(make_run) -> None:
    run = make_run('echo "node $NODE_RANK of $NODE_COUNT"', nodes=3)

    result = run_command(run, None)

    assert result.ok, result.log_tail
    assert sorted(result.log_tail) == ["[node0]:node 0 of 3", "[node1]:node 1 of 3", "[node2]:node 2 of 3"]


@pytest.mark.e2e
def test_a_failing_node_fails_the_job_and_stops_the_others(make_run) -> None:
    run = make_run('if [ "$NODE_RANK" = 1 ]; then echo "bad input"; exit 3; fi; sleep 60', nodes=2)
    started = time.monotonic()

    result = run_command(run, None)

    assert not result.ok and result.exit_code == 3
    assert time.monotonic() - started < 20  # node 0 did not sleep its 60 s
    assert result.log_tail[-3:] == ["==> mlspec: last lines of node 1:", "==> mlspec:   bad input",
                                    "==> mlspec: node 1 failed with exit code 3; the other nodes were stopped"]


@pytest.mark.e2e
@pytest.mark.parametrize("node1", ["sleep 1; exit 3", "sleep 1"])
def test_nothing_a_node_started_outlives_the_job_even_in_its_own_session(make_run, node1: str) -> None:
    # Node 0 leaves a process in a session of its own and exits, as torchrun's workers are started.
    script = (f'if [ "$NODE_RANK" = 0 ]; then setsid sleep 60 & echo $! > escaped.pid; exit 0; fi; {node1}')
    run = make_run(script, nodes=2)

    result = run_command(run, None)

    assert result.exit_code == (3 if "exit 3" in node1 else 0), result.log_tail
    pid = int((Path(run.code or "") / "escaped.pid").read_text())
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.e2e
def test_a_job_over_its_memory_limit_is_stopped_with_its_peak(make_run) -> None:
    hog = "python -c \"import time; block = b'x' * (400 * 2**20); print('allocated', flush=True); time.sleep(60)\""
    run = make_run(hog, limits=NodeLimits(memory=256 * 2**20))
    started = time.monotonic()

    result = run_command(run, None)

    assert not result.ok and result.exit_code == 137
    assert time.monotonic() - started < 30
    last = result.log_tail[-1]
    assert last.startswith("==> mlspec: the job's processes exceeded the 256Mi memory limit (peak "), last
    peak = last.split("(peak ")[1].split(")")[0]
    assert peak.endswith("Mi") and float(peak[:-2]) > 256


@pytest.mark.e2e
def test_a_job_under_its_memory_limit_runs_as_usual(make_run) -> None:
    run = make_run("python -c \"print(len(b'x' * 2**20))\"", limits=NodeLimits(memory=2**30))

    result = run_command(run, None)

    assert result.ok and result.log_tail == ["1048576"]


@pytest.mark.e2e
def test_a_timed_out_job_with_limits_leaves_no_process_behind(make_run) -> None:
    run = make_run("sleep 60 & echo $! > sleeper.pid; wait", limits=NodeLimits(memory=2**30), nodes=2, timeout=2)
    started = time.monotonic()

    result = run_command(run, None)

    assert result.timed_out and time.monotonic() - started < 15
    pid = int((Path(run.code or "") / "sleeper.pid").read_text())
    assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


@pytest.mark.e2e
def test_cpus_pin_each_node_to_its_own_cores(make_run) -> None:
    cores = sorted(os.sched_getaffinity(0))
    script = "import os; print(sorted(os.sched_getaffinity(0)), os.environ['OMP_NUM_THREADS'])"
    run = make_run(f'python -c "{script}"', limits=NodeLimits(cpus=0.5), nodes=2)

    result = run_command(run, None)

    assert result.ok, result.log_tail
    assert "==> mlspec: node 0 pinned to core(s) 0 (cpus: 0.5, rounded up to 1)".replace(
        "core(s) 0", f"core(s) {cores[0]}") in result.log_tail
    seen = sorted(line for line in result.log_tail if line.startswith("[node"))
    assert seen == [f"[node{i}]:[{cores[i % len(cores)]}] 1" for i in range(2)]


@pytest.mark.e2e
def test_gpus_set_cuda_visible_devices_per_node(make_run, monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # the devices this machine lets mlspec hand out
    run = make_run('echo "$CUDA_VISIBLE_DEVICES"', limits=NodeLimits(gpus=1), nodes=2)

    result = run_command(run, None)

    assert result.ok, result.log_tail
    assert sorted(result.log_tail) == ["[node0]:3", "[node1]:5"]


@pytest.mark.e2e
def test_a_job_asking_for_more_gpus_than_visible_fails_before_running(make_run, monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    run = make_run("echo never", limits=NodeLimits(gpus=2))

    result = run_command(run, None)

    assert not result.ok and "never" not in result.log_tail
    assert "mlspec: a node of 2 GPU(s) needs more than the 1 this machine has" in result.log_tail


# --- torchrun -----------------------------------------------------------------------------------------------------

@pytest.mark.e2e
def test_a_failing_rank_fails_the_job_with_its_last_lines(make_run) -> None:
    pytest.importorskip("torch")
    run = make_run(f"python {DDP} --fail-rank 3 ${{{{outputs.model}}}}", nodes=2, distribution="pytorch",
                   processes_per_node=2, outputs={"model": {"path": str(Path(make_run("").workdir) / "model")}})

    result = run_command(run, None)

    assert not result.ok and result.exit_code == 1
    assert result.log_tail[-1] == ("==> mlspec: rank 3 of 4 (node 1) failed with exit code 1; "
                                   "the other ranks were stopped")
    report = result.log_tail[result.log_tail.index("==> mlspec: last lines of rank 3 of 4 (node 1):"):]
    # torch prefixes a rank's uncaught exception with its rank itself; the launcher adds nothing to that
    assert "==> mlspec:   [rank3]: RuntimeError: rank 3 was told to fail" in report
    assert len(report) <= 10 and not any("rank2]" in line or "rank0]" in line for line in report)

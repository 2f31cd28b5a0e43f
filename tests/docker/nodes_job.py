"""A job of two nodes without a distribution, added to a real-engine workspace: both containers run at once on the
workspace network, each with its rank, node 0 holding the other's lifeline until it reported success."""

from __future__ import annotations

from datetime import datetime

import docker

from tests.pulumi.harness import Captured

CONTAINER = "docker:index/container:Container"
JOB = "shards"

SPEC = """\
---
kind: Job
name: shards
code: src/
command: >-
  python -c "import os, time; time.sleep(2);
  print('node', os.environ['NODE_RANK'], 'of', os.environ['NODE_COUNT'])"
resources: {instance_count: 2}
"""


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text[:26].rstrip("Z") if "." in text else text.rstrip("Z"))


def assert_nodes_ran_together(client: docker.DockerClient, captured: Captured) -> None:
    """Each node's container ran to success with its rank, at the same time as the other, node 0 behind its alias."""
    nodes = [captured.get(CONTAINER, f"{JOB}-{node}") for node in (0, 1)]
    states = []
    for rank, node in enumerate(nodes):
        assert node.outputs["exitCode"] == 0, node.outputs.get("containerLogs")
        assert f"node {rank} of 2" in node.outputs["containerLogs"]
        info = client.api.inspect_container(node.inputs["name"])
        assert info["Name"].lstrip("/").endswith(f"-{rank}")
        states.append(info["State"])
    network = nodes[0].inputs["networksAdvanced"][0]["name"]
    aliases = client.api.inspect_container(nodes[0].inputs["name"])["NetworkSettings"]["Networks"][network]["Aliases"]
    assert nodes[0].inputs["name"] in aliases
    # They ran at once, and node 0 ended only once node 1's 2 s command had: it waited for node 1's exit code
    # before registering. (Not "after node 1's container ended": node 1 reports, then its interpreter and
    # container still take a moment to stop, which on a busy engine may end after node 0.)
    started = [_time(state["StartedAt"]) for state in states]
    finished = [_time(state["FinishedAt"]) for state in states]
    assert started[1] < finished[0] and started[0] < finished[1]
    assert (finished[0] - started[1]).total_seconds() >= 2

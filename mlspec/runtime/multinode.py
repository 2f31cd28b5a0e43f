"""What each node of a job runs when its nodes run apart (a container or pod each): one way, for every target, to
turn the job's contract into node N's: its command (a torchrun agent for `distribution: pytorch`), its outputs,
variables, tags and lifeline to node 0."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

RENDEZVOUS_PORT = 29400  # torchrun's static rendezvous, on node 0
LIFELINE_PORT = 29401  # node 0's end of the peer lifeline (mlspec.runtime.peers)


@dataclass(frozen=True)
class NodeLayout:
    """How a job's nodes find each other.

    :param nodes: how many run the command together (resources.instance_count).
    :param leader: node 0's name as the others reach it (a network alias, a pod's DNS name).
    :param distribution: "pytorch": each node runs a torchrun agent; None: each runs the command with NODE_RANK.
    :param processes_per_node: torchrun workers per node.
    :param lifeline: whether the nodes hold the peer lifeline to node 0 (`JobRun.peers`).
    :param wait_s: how long node 0 waits for the others' exit codes once its command succeeded.
    """

    nodes: int
    leader: str
    distribution: str | None = None
    processes_per_node: int = 1
    lifeline: bool = False
    wait_s: float = 300.0


def for_node(contract: dict[str, Any], layout: NodeLayout, node: int) -> dict[str, Any]:
    """Node `node`'s contract (plain JobRun fields) from the job's: node 0 registers the job's models; the others
    write their outputs and register nothing. A job of one node keeps all but its command."""
    if layout.nodes == 1:  # torchrun's workers, if any, rendezvous on this node
        return {**contract, "command": node_command(contract["command"], layout, node)}
    outputs = {name: output if node == 0 else {k: v for k, v in output.items() if k in ("type", "path")}
               for name, output in contract.get("outputs", {}).items()}
    env = dict(contract.get("env", {}))
    if not layout.distribution:
        env.update(NODE_RANK=str(node), NODE_COUNT=str(layout.nodes))
    tags = {**contract.get("tags", {}), "mlspec.node": str(node)}
    result = {**contract, "command": node_command(contract["command"], layout, node), "outputs": outputs,
              "env": env, "tags": tags}
    if layout.lifeline:
        result["peers"] = {"node": node, "nodes": layout.nodes, "leader": layout.leader, "port": LIFELINE_PORT,
                           "wait_s": layout.wait_s}
    return result


def node_command(command: str, layout: NodeLayout, node: int) -> str:
    """The spec's command, under a torchrun agent for `distribution: pytorch`: node `node` of `layout.nodes`, a
    static rendezvous on node 0 (this node itself when it is the only one)."""
    if layout.distribution != "pytorch":
        return command
    master = layout.leader if layout.nodes > 1 else "127.0.0.1"
    agent = ["torchrun", "--nnodes", str(layout.nodes), "--node-rank", str(node),
             "--nproc-per-node", str(layout.processes_per_node), "--rdzv-backend", "static",
             "--master-addr", master, "--master-port", str(RENDEZVOUS_PORT),
             "--max-restarts", "0", "--no-python", "bash", "-c"]
    return " ".join(shlex.quote(word) for word in agent) + " " + shlex.quote(command)

"""`mlspec logs NAME [-f]` on a docker stack: the containers of a job, an endpoint (gateway and replicas) or a compute
instance, through the Docker API; one container's log as it is, several at once with `name | line` prefixes, and
with -f the containers a rollout starts join in."""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from typing import Any

from mlspec.cli.common import CommandError
from mlspec.cli.docker_stack import DockerStack, docker_stack
from mlspec.cli.output import EXIT_INVALID, EXIT_OK

REDISCOVER_S = 1.0  # how often -f looks for new containers of the resource
KINDS = ("job", "endpoint", "compute")


def resource_of(stack: DockerStack, name: str) -> str:
    """The `mlspec.resource` label of what NAME is in the spec: a job, an endpoint or a compute instance."""
    for kind in KINDS:
        if f"{kind}/{name}" in stack.graph.nodes:
            return f"{kind}/{name}"
    raise CommandError(f"no logs for '{name}': name a job, an endpoint or a compute instance of the spec",
                       EXIT_INVALID)


def logs(args: argparse.Namespace) -> int:
    stack = docker_stack(args)
    resource = resource_of(stack, args.name)
    client = stack.client()
    containers = stack.containers(client, resource)
    if not containers and not args.follow:
        print(f"{resource} has no container on the Docker host yet: see `mlspec status`", file=sys.stderr)
        return EXIT_OK
    tail = args.tail or "all"
    if len(containers) == 1 and not resource.startswith("endpoint/"):  # an endpoint's replicas come and go
        for chunk in containers[0].logs(stream=True, follow=args.follow, tail=tail):
            sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()
        return EXIT_OK
    _prefixed(stack, client, resource, args.follow, tail, containers)
    return EXIT_OK


def _prefixed(stack: DockerStack, client: Any, resource: str, follow: bool, tail: int | str,
              containers: list[Any]) -> None:
    """Every container's log at once, like `docker compose logs`; with -f, until interrupted."""
    if not follow:
        width = max(len(stack.short_name(c)) for c in containers)
        for container in containers:
            name = stack.short_name(container)
            for line in container.logs(tail=tail).decode(errors="replace").splitlines():
                sys.stdout.write(f"{name:<{width}} | {line}\n")
        return
    lines: queue.Queue[tuple[str, str]] = queue.Queue()
    followed: set[str] = set()
    while True:
        for container in stack.containers(client, resource):
            if container.id not in followed:
                followed.add(container.id)
                threading.Thread(target=_follow, args=(container, stack.short_name(container), tail, lines),
                                 daemon=True).start()
        deadline = time.monotonic() + REDISCOVER_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                name, line = lines.get(timeout=left)
            except queue.Empty:
                break
            sys.stdout.write(f"{name} | {line}\n")
            sys.stdout.flush()


def _follow(container: Any, name: str, tail: int | str, lines: queue.Queue[tuple[str, str]]) -> None:
    partial = ""
    for chunk in container.logs(stream=True, follow=True, tail=tail):
        text = partial + chunk.decode(errors="replace")
        *whole, partial = text.split("\n")
        for line in whole:
            lines.put((name, line))

"""The local engine's operation commands on a docker stack: `status` and `compute start|stop|restart` through the
Docker API (the workspace's containers by label), `endpoint invoke|keys [--regenerate]` on the published gateway
with the keys of the stack's outputs, and the workspace's MLflow, published behind authentication, for `runs` and
`models`."""

from __future__ import annotations

import argparse
import os
from typing import Any

from mlspec.cli.common import CommandError
from mlspec.cli.docker_stack import DockerStack, docker_stack, node
from mlspec.cli.output import EXIT_FAILED, EXIT_INVALID, EXIT_OK, print_json
from mlspec.cli.stack_state import open_stack, output

TRACKING_CREDENTIALS = "MLflow.credentials"  # the stack output holding the published MLflow's user and password
KEY_TYPE = "random:index/randomPassword:RandomPassword"


def describe(stack: DockerStack, container: Any) -> dict[str, Any]:
    """One container as `status` shows it: its role, state, health and image."""
    labels = container.labels or {}
    state = container.attrs.get("State", {})
    role = labels.get("mlspec.role") or (f"replica of {labels['mlspec.deployment']}"
                                          if "mlspec.deployment" in labels else labels["mlspec.resource"].split("/")[0])
    image = container.attrs.get("Config", {}).get("Image", "")
    return {"container": container.name, "name": stack.short_name(container), "role": role,
            "state": state.get("Status", "?"), "health": (state.get("Health") or {}).get("Status"),
            "exit_code": state.get("ExitCode") if state.get("Status") == "exited" else None,
            "restarts": container.attrs.get("RestartCount", 0), "image": image}


def status(args: argparse.Namespace) -> int:
    stack = docker_stack(args)
    client = stack.client()
    by_resource: dict[str, list[dict[str, Any]]] = {}
    for container in stack.containers(client):
        by_resource.setdefault(container.labels["mlspec.resource"], []).append(describe(stack, container))
    declared = [n for n in stack.graph.nodes if n.split("/", 1)[0] in ("job", "endpoint", "compute")]
    missing = [rid for rid in declared if rid not in by_resource and not _runs_nothing(stack, rid)]
    urls = {f"endpoint/{n.split('/', 1)[1]}": stack.endpoint_url(n.split("/", 1)[1]) for n in declared
            if n.startswith("endpoint/") and getattr(stack.graph.nodes[n].resource, "type", None) == "online"}
    if not stack.graph.spec.workspace.tracking.uri:
        urls[f"workspace/{stack.workspace}"] = stack.tracking_url
    if args.json:
        print_json({"workspace": stack.workspace, "resources": by_resource, "urls": urls, "missing": missing})
        return EXIT_OK
    if not by_resource:
        print(f"Nothing of workspace {stack.workspace} runs on the Docker host: run `mlspec up` with this stack.")
        return EXIT_OK
    width = max(len(row["name"]) for rows in by_resource.values() for row in rows)
    for rid, rows in sorted(by_resource.items()):
        print(f"{rid}  {urls.get(rid, '')}".rstrip())
        for row in rows:
            health = f" ({row['health']})" if row["health"] else ""
            code = f" exit {row['exit_code']}" if row["exit_code"] is not None else ""
            print(f"  {row['name']:<{width}}  {row['role']:<18} {row['state']}{health}{code}  {row['image']}")
    if missing:
        print(f"\nDeclared, with no container: {', '.join(missing)}; see `mlspec up`.")
    return EXIT_OK


def _runs_nothing(stack: DockerStack, rid: str) -> bool:
    """Compute clusters have no container of their own: jobs run in containers of their own."""
    return rid.startswith("compute/") and getattr(stack.graph.nodes[rid].resource, "type", None) != "instance"


def compute_action(args: argparse.Namespace) -> int:
    stack = docker_stack(args)
    compute = node(stack, "compute", args.name, "a compute")
    if getattr(compute, "type", None) != "instance":
        print(f"compute {args.name} runs jobs in containers of their own; there is nothing to {args.action}")
        return EXIT_OK
    client = stack.client()
    containers = stack.containers(client, f"compute/{args.name}")
    if not containers:
        raise CommandError(f"compute/{args.name} has no container on the Docker host: run `mlspec up`", EXIT_FAILED)
    for container in containers:
        getattr(container, args.action)()
    if args.action == "stop":
        print(f"stopped {args.name}; notebooks are kept on the workspace volume")
    else:
        print(f"{args.action}ed {args.name}")
    return EXIT_OK


def _online(stack: DockerStack, name: str) -> Any:
    endpoint = node(stack, "endpoint", name, "an online endpoint")
    if getattr(endpoint, "type", None) != "online":
        raise CommandError(f"'{name}' is not an online endpoint of the spec", EXIT_INVALID)
    return endpoint


def _keys(args: argparse.Namespace, name: str) -> dict[str, str]:
    keys: dict[str, str] = dict(output(open_stack(args), f"{name}.keys", f"endpoint {name}'s keys"))
    return keys


def invoke_target(args: argparse.Namespace) -> tuple[str, str | None]:
    """The gateway's published URL (or --url) and the key to send (None: the endpoint takes none)."""
    stack = docker_stack(args)
    endpoint = _online(stack, args.name)
    url = (args.url or stack.endpoint_url(args.name)).rstrip("/")
    if endpoint.auth != "key":
        return url, None
    return url, args.api_key or _keys(args, args.name)[args.key]


def keys(args: argparse.Namespace) -> int:
    stack = docker_stack(args)
    endpoint = _online(stack, args.name)
    if endpoint.auth != "key":
        raise CommandError(f"endpoint {args.name} takes no keys (auth: none)", EXIT_INVALID)
    if args.regenerate:
        regenerate(args, args.name, args.regenerate)
    found = _keys(args, args.name)
    url = stack.endpoint_url(args.name)
    if args.json:
        print_json({"url": url, **found})
    else:
        print(f"url:       {url}\nprimary:   {found.get('primary')}\nsecondary: {found.get('secondary')}")
    return EXIT_OK


def regenerate(args: argparse.Namespace, endpoint: str, slot: str) -> None:
    """An update that replaces the slot's RandomPassword (`pulumi up --replace URN`); the gateway, configured with the
    keys' hashes, is recreated with the new one's."""
    state = open_stack(args)
    suffix = f"${KEY_TYPE}::{endpoint}-{slot}-key"
    urns = [urn for urn in state.urns() if urn.endswith(suffix)]
    if len(urns) != 1:
        raise CommandError(f"the stack's state has {len(urns)} resources ending {suffix}: run `mlspec up` with "
                           "this stack first", EXIT_FAILED)
    state.update(replace=urns)


def tracking_client(args: argparse.Namespace) -> tuple[Any, str]:
    """An MLflow client of the workspace's server as the host reaches it (published, with the stack's credentials
    as MLflow's own variables), or of the spec's `tracking.uri`."""
    from mlflow.tracking import MlflowClient

    stack = docker_stack(args)
    uri = stack.graph.spec.workspace.tracking.uri
    if uri:
        return MlflowClient(uri, uri), uri
    credentials = output(open_stack(args), TRACKING_CREDENTIALS, "the published MLflow's user name and password")
    os.environ["MLFLOW_TRACKING_USERNAME"] = credentials["username"]
    os.environ["MLFLOW_TRACKING_PASSWORD"] = credentials["password"]
    uri = stack.tracking_url
    return MlflowClient(uri, uri), uri

"""`mlspec endpoint invoke|keys` and `mlspec compute start|stop|restart`."""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mlspec.cli.common import CommandError, local_engine, target_of
from mlspec.cli.output import EXIT_FAILED, EXIT_INVALID, EXIT_OK, print_json


def _record(engine: Any, resource_id: str) -> Any:
    from mlspec.backends.local.state import StateStore

    if not engine.paths.state_db.exists():
        raise CommandError("nothing deployed yet: run `mlspec up`", EXIT_FAILED)
    store = StateStore(engine.paths.state_db)
    record = store.records().get(resource_id)
    store.close()
    if record is None:
        raise CommandError(f"{resource_id} is not deployed: run `mlspec up`", EXIT_FAILED)
    return record


def _body(args: argparse.Namespace) -> bytes:
    try:
        return sys.stdin.buffer.read() if args.data == "-" else Path(args.data).read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read the request body {args.data}: {exc.strerror or exc}", EXIT_FAILED) from exc


def invoke(args: argparse.Namespace) -> int:
    if target_of(args) == "kubernetes":
        from mlspec.cli.cluster_commands import invoke_target

        url, key = invoke_target(args)
        return _send(args, url, key, _body(args))
    if target_of(args) == "docker":
        from mlspec.cli.docker_commands import invoke_target as docker_invoke_target

        url, key = docker_invoke_target(args)
        return _send(args, url, key, _body(args))
    engine = local_engine(args)
    if args.url:
        raise CommandError("--url is for an endpoint of a kubernetes or docker stack: the local engine knows its own",
                           EXIT_INVALID)
    record = _record(engine, f"endpoint/{args.name}")
    body = _body(args)
    key = None
    if record.outputs.get("auth") == "key":
        from mlspec.backends.local.keys import load_keys

        key = args.api_key or load_keys(engine.paths, args.name)[args.key]
    return _send(args, record.outputs["url"], key, body)


def _send(args: argparse.Namespace, url: str, key: str | None, body: bytes) -> int:
    """POST the body to the endpoint's /invocations and print the answer."""
    content_type = "text/csv" if args.data.endswith(".csv") else "application/json"
    request = urllib.request.Request(f"{url}/invocations", data=body, method="POST",
                                     headers={"Content-Type": content_type})
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    if args.deployment:
        request.add_header("azureml-model-deployment", args.deployment)
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            payload = response.read().decode()
            deployment = response.headers.get("x-mlspec-deployment", "?")
    except urllib.error.HTTPError as exc:
        raise CommandError(f"endpoint answered {exc.code}: {exc.read().decode(errors='replace')}", EXIT_FAILED) from exc
    except OSError as exc:
        raise CommandError(f"endpoint {args.name} is not reachable at {url} ({exc}); "
                           "see `mlspec status`", EXIT_FAILED) from exc
    print(payload)
    print(f"(answered by deployment {deployment})", file=sys.stderr)
    return EXIT_OK


def keys(args: argparse.Namespace) -> int:
    from mlspec.backends.local.keys import load_keys, rotate

    if target_of(args) == "kubernetes":
        from mlspec.cli.cluster_commands import keys as cluster_keys

        return cluster_keys(args)
    if target_of(args) == "docker":
        from mlspec.cli.docker_commands import keys as docker_keys

        return docker_keys(args)
    engine = local_engine(args)
    record = _record(engine, f"endpoint/{args.name}")
    if args.regenerate:
        current = rotate(engine.paths, args.name, args.regenerate)
    else:
        current = load_keys(engine.paths, args.name)
    if args.json:
        print_json({"url": record.outputs["url"], **current})
    else:
        print(f"url:       {record.outputs['url']}\nprimary:   {current['primary']}\nsecondary: {current['secondary']}")
    return EXIT_OK


def compute_action(args: argparse.Namespace) -> int:
    from mlspec.backends.local.state import StateStore
    from mlspec.backends.local.supervisor_start import ensure_running

    if target_of(args) == "docker":
        from mlspec.cli.docker_commands import compute_action as docker_compute_action

        return docker_compute_action(args)
    engine = local_engine(args)
    record = _record(engine, f"compute/{args.name}")
    if "url" not in record.outputs:
        print(f"compute {args.name} runs jobs on demand locally; there is nothing to {args.action}")
        return EXIT_OK
    from mlspec.backends.local.processes import stop_group

    store = StateStore(engine.paths.state_db)
    rows = store.processes(record.id)
    for row in rows:
        if args.action in ("stop", "restart") and row.pid:
            stop_group(row.pid)
        # 'stopped' rows stay declared; the supervisor leaves them alone until `compute start`.
        store.observe(row.id, pid=None, state="stopped" if args.action == "stop" else "pending")
    store.close()
    if args.action == "stop":
        print(f"stopped {args.name}; notebooks are kept in {record.outputs.get('notebooks')}")
    else:
        ensure_running(engine.paths)
        print(f"{args.action}ed {args.name}: {record.outputs['url']}")
    return EXIT_OK if rows else EXIT_FAILED
